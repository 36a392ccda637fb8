'use strict'
// Property tests (fast-check) of the converters that take the caller's values: any nested JS
// value as a JSON body or as query parameters is either converted (to JSON text the addon and
// a server accept, or to query strings) or refused with a ConfigurationError, never another
// error and never a crash. Runs are bounded (a few seconds); FUZZ_RUNS raises them for a
// longer local run. A value a run ever found wrong is pinned in EXAMPLES so that every run
// tries it again.

const test = require('node:test')
const assert = require('node:assert/strict')
const fc = require('fast-check')
const st = require('servicetitan')
const { jsonText, flatQuery, MAX_DEPTH } = require('../convert.js')
const { clientOptions, credentials } = require('./helpers.js')

const { Client, Sandbox, ConfigurationError, ServiceTitanError } = st

const RUNS = Number(process.env.FUZZ_RUNS ?? 5000)

function nest(depth, leaf) {
  let value = leaf
  for (let i = 0; i < depth; i++) value = i % 2 ? { k: value } : [value]
  return value
}

/** Single UTF-16 code units (lone surrogates included) and whole code points. */
const char = fc.oneof(
  fc.constantFrom('a', '"', '\\', '\u0000', '\u2028', '\ud800', '\udfff', '\ud83d\ude00'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
)
const text = fc.string({ unit: char, maxLength: 6 })
const key = fc.oneof(fc.constantFrom('__proto__', 'toJSON', 'constructor', 'length', '', '0'), text)

const leaf = fc.oneof(
  text,
  fc.double(), // NaN, ±Infinity and -0 included
  fc.integer(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.constantFrom(undefined, null, true, false),
  fc.date({ noInvalidDate: false }),
  fc.uint8Array({ maxLength: 4 }).map((bytes) => Buffer.from(bytes)),
  fc.uint8Array({ maxLength: 4 }),
  fc.constantFrom(
    () => 1,
    Symbol('s'),
    new Map([['a', 1]]),
    new Set([1]),
    Object('boxed'),
    Object(2),
    Object(3n),
    new Error('e'),
    /re/,
    { toJSON: () => 'via toJSON' },
    { toJSON: () => undefined },
    { toJSON: 5 },
  ),
)

const { value: tree } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
}))

/** A fresh copy of the arrays and objects of `value` (fast-check's values must stay as made). */
function copy(value) {
  if (Array.isArray(value)) return value.map(copy)
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const out = {}
    for (const k of Object.keys(value)) Object.defineProperty(out, k, { value: copy(value[k]), enumerable: true, writable: true })
    return out
  }
  return value
}

/** `value` with one of its containers holding one of its own ancestors (or itself). */
function withCycle(value, pick, ancestorPick) {
  const root = copy(value)
  const found = []
  const walk = (v, ancestors) => {
    if (v === null || typeof v !== 'object' || !(Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype)) return
    found.push([v, [...ancestors, v]])
    for (const member of Array.isArray(v) ? v : Object.values(v)) walk(member, [...ancestors, v])
  }
  walk(root, [])
  if (found.length === 0) return root
  const [container, ancestors] = found[pick % found.length]
  const target = ancestors[ancestorPick % ancestors.length]
  if (Array.isArray(container)) container.push(target)
  else container.loop = target
  return root
}

const anyValue = fc.oneof(
  { weight: 6, arbitrary: tree },
  { weight: 2, arbitrary: fc.tuple(tree, fc.nat(), fc.nat()).map(([v, a, b]) => withCycle([v], a, b)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: MAX_DEPTH - 2, max: MAX_DEPTH + 40 }), leaf).map(([n, l]) => nest(n, l)) },
)

/** How deep arrays and objects nest in JSON text. */
function nesting(json) {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const c = json[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') inString = true
    else if (c === '[' || c === '{') deepest = Math.max(deepest, ++depth)
    else if (c === ']' || c === '}') depth--
  }
  return deepest
}

/** Values a run once found mishandled, or that stand for a class of them: tried every run. */
const EXAMPLES = [
  { a: '\ud800' }, // a lone surrogate: JSON.stringify escapes it, the addon's parser refused it as a bare Error
  { '\udc00': 1 }, // the same in a key
  [undefined], // JSON.stringify sends null
  { n: NaN }, // JSON.stringify sends null
  nest(MAX_DEPTH, 1), // the deepest value allowed: serde_json's own limit refused it
  nest(MAX_DEPTH + 1, 1),
  [10n],
  withCycle([{ a: [] }], 1, 0),
  { when: new Date(NaN) },
  { m: new Map([['a', 1]]) },
]

function checkRefusal(err, argument) {
  assert.ok(err instanceof ConfigurationError, `not a ConfigurationError: ${err && err.stack}`)
  assert.equal(err.argument, argument)
  assert.ok(err.message.startsWith(argument), err.message)
}

test(`the JSON converter sends or refuses, nothing else (${RUNS} runs)`, () => {
  fc.assert(
    fc.property(anyValue, (value) => {
      let json
      try {
        json = jsonText(value, 'json')
      } catch (err) {
        checkRefusal(err, 'json')
        return
      }
      if (json === undefined) return
      assert.equal(typeof json, 'string')
      assert.ok(json.isWellFormed(), 'the text is valid Unicode')
      assert.ok(nesting(json) <= MAX_DEPTH, 'within the depth limit')
      JSON.parse(json)
    }),
    { numRuns: RUNS, examples: EXAMPLES.map((v) => [v]) },
  )
})

test(`values JSON carries faithfully are sent exactly as JSON.stringify writes them (${RUNS} runs)`, () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      assert.equal(jsonText(value, 'json'), JSON.stringify(value))
    }),
    { numRuns: RUNS },
  )
})

test(`the query converter sends strings or refuses (${RUNS} runs)`, () => {
  const params = fc.oneof(fc.dictionary(key, fc.oneof(leaf, fc.array(leaf, { maxLength: 3 }), tree)), anyValue)
  fc.assert(
    fc.property(params, (value) => {
      let flat
      try {
        flat = flatQuery(value)
      } catch (err) {
        checkRefusal(err, 'params')
        return
      }
      assert.ok(Array.isArray(flat) && flat.length % 2 === 0)
      for (const part of flat) assert.ok(typeof part === 'string' && part.isWellFormed(), JSON.stringify(part))
    }),
    { numRuns: RUNS, examples: [[{ ids: [1, [2]] }], [{ '\ud800': 'x' }], [{ on: new Date(NaN) }], [[1, 2]]] },
  )
})

test('against the sandbox, a body or params are sent or refused before any request', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox, { rateLimit: false, maxAttempts: 1 }))
  const tenant = client.tenant(1001, credentials(sandbox))
  const sent = () => Object.values(sandbox.stats().routes).reduce((a, b) => a + b, 0)
  const outcome = async (call) => {
    const before = sent()
    try {
      await call()
      return 'sent'
    } catch (err) {
      if (err instanceof ConfigurationError) {
        assert.equal(sent(), before, `refused after sending: ${err.message}`)
        return 'refused'
      }
      // The server's answer to what was sent (a 400 for a body it does not take, say).
      assert.ok(err instanceof ServiceTitanError && err.status !== null, `not a server's answer: ${err && err.stack}`)
      return 'sent'
    }
  }
  const counts = { sent: 0, refused: 0 }
  await fc.assert(
    fc.asyncProperty(anyValue, anyValue, async (body, params) => {
      counts[await outcome(() => tenant.post('crm/customers', { json: body }))]++
      counts[await outcome(() => tenant.get('crm/customers', { params: { pageSize: 1, x: params } }))]++
    }),
    { numRuns: Math.ceil(RUNS / 10), examples: EXAMPLES.map((v) => [v, v]) },
  )
  assert.ok(counts.sent > 0 && counts.refused > 0, JSON.stringify(counts))
  if (process.env.FUZZ_RUNS) process.stdout.write(`# sandbox outcomes ${JSON.stringify(counts)}\n`)
  // And the client is none the worse.
  assert.ok((await tenant.get('crm/customers', { params: { pageSize: 1 } })).data.length === 1)
})
