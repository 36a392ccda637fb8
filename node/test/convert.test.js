'use strict'
// The caller's values on their way to the server: bodies, query and report parameters,
// sandbox options. What JSON carries faithfully is sent; a cycle, nesting past 128 levels or
// a value JSON would silently change is a ConfigurationError naming the argument and the path
// to the bad value, before any request.

const test = require('node:test')
const assert = require('node:assert/strict')
const st = require('servicetitan')
const { jsonText, flatQuery, MAX_DEPTH } = require('../convert.js')
const { clientOptions, credentials } = require('./helpers.js')

const { Client, Sandbox, ConfigurationError } = st

function setup(t) {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox, { rateLimit: false }))
  const tenant = client.tenant(1001, credentials(sandbox, 1001))
  return { sandbox, tenant }
}

/**
 * Asserts `err` is the ConfigurationError of `argument` whose message starts with `path: `
 * (or, given `path…`, with `path` only: deep paths are cut in the middle) and matches `what`.
 */
function refused(argument, path, what) {
  return (err) => {
    assert.ok(err instanceof ConfigurationError, `not a ConfigurationError: ${err && err.stack}`)
    assert.equal(err.code, 'configuration')
    assert.equal(err.argument, argument)
    assert.ok(err.message.startsWith(path.endsWith('…') ? path.slice(0, -1) : `${path}: `), err.message)
    assert.match(err.message, what)
    return true
  }
}

function nest(depth, leaf = 1) {
  let value = leaf
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

const CYCLE = /a value that contains itself cannot be sent as JSON/

test('a body that contains itself is refused with the path where it closes the circle', async (t) => {
  const { tenant, sandbox } = setup(t)
  const self = { name: 'x' }
  self.self = self
  await assert.rejects(tenant.post('crm/customers', { json: self }), refused('json', 'json.self', CYCLE))
  const deep = { a: { b: [1, 2, 3, { c: {} }] } }
  deep.a.b[3].c.back = deep.a
  await assert.rejects(tenant.post('crm/customers', { json: deep }), (err) => {
    refused('json', 'json.a.b[3].c.back', CYCLE)(err)
    assert.match(err.message, /\(it is json\.a again\)/)
    return true
  })
  const list = []
  list.push(list)
  await assert.rejects(tenant.put('crm/customers/1', { json: list }), refused('json', 'json[0]', CYCLE))
  // The same object twice, side by side, is no cycle: JSON repeats it.
  const shared = { street: '1 Main St' }
  assert.equal(jsonText({ home: shared, work: shared }, 'json'), '{"home":{"street":"1 Main St"},"work":{"street":"1 Main St"}}')
  assert.equal(sandbox.stats().tokenRequestsTotal, 0, 'nothing reached the server')
})

test(`nesting is limited to ${MAX_DEPTH} levels, refused at the first level too deep`, async (t) => {
  const { tenant, sandbox } = setup(t)
  assert.equal(MAX_DEPTH, 128)
  assert.equal(JSON.parse(jsonText(nest(128), 'json')).flat(Infinity)[0], 1)
  assert.throws(() => jsonText(nest(129), 'json'), (err) => {
    refused('json', `json${'[0]'.repeat(38)}…`, /nested deeper than 128 levels/)(err)
    assert.ok(err.message.length < 400, 'the path is cut in the middle')
    return true
  })
  await assert.rejects(tenant.post('crm/customers', { json: { a: nest(128) } }), refused('json', 'json.a[0]…', /nested deeper/))
  // A few thousand levels: refused the same way, no stack overflow.
  let objects = {}
  for (let i = 0; i < 5000; i++) objects = { next: objects }
  await assert.rejects(tenant.patch('crm/customers/1', { json: objects }), refused('json', 'json.next.next…', /nested deeper/))
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
})

test('values JSON cannot carry faithfully are refused with their path', () => {
  const cases = [
    [{ id: 10n }, 'json.id', /a BigInt cannot be sent as JSON \(convert it first/],
    [{ total: NaN }, 'json.total', /NaN cannot be sent as JSON/],
    [[1, Infinity], 'json[1]', /Infinity cannot be sent as JSON/],
    [{ x: -Infinity }, 'json.x', /-Infinity cannot be sent/],
    [{ f() {} }, 'json.f', /a function cannot be sent as JSON/],
    [{ s: Symbol('s') }, 'json.s', /a symbol cannot be sent as JSON/],
    [[1, undefined], 'json[1]', /undefined cannot be sent as JSON in an array/],
    [[1, , 3], 'json[1]', /undefined cannot be sent as JSON in an array/], // eslint-disable-line no-sparse-arrays
    [{ tags: new Set(['a']) }, 'json.tags', /a Set cannot be sent as JSON \(convert it first, e\.g\. with Array\.from\)/],
    [{ m: new Map() }, 'json.m', /a Map cannot be sent as JSON/],
    [{ when: new Date(NaN) }, 'json.when', /an invalid Date cannot be sent as JSON/],
    [{ bytes: new Uint8Array(2) }, 'json.bytes', /a typed array cannot be sent/],
    [{ err: new Error('boom') }, 'json.err', /an Error cannot be sent/],
    [{ name: 'a\ud800b' }, 'json.name', /lone surrogate/],
    [{ 'bad\udc00key': 1 }, 'json["bad\\udc00key"]', /lone surrogate \(not valid Unicode\) cannot be sent as a JSON key/],
    [{ 'with space': { p: Promise.resolve() } }, 'json["with space"].p', /a Promise cannot be sent/],
    [Object(Symbol('boxed')), 'json', /a Symbol object cannot be sent/],
    [{ big: Object(5n) }, 'json.big', /a BigInt cannot be sent/],
  ]
  for (const [value, path, what] of cases) {
    assert.throws(() => jsonText(value, 'json'), refused('json', path, what), path)
  }
})

test('what JSON carries faithfully is sent as JSON.stringify would', () => {
  const when = new Date(Date.UTC(2026, 0, 31, 12))
  class Money {
    constructor(cents) {
      this.cents = cents
    }

    toJSON() {
      return { amount: this.cents / 100, currency: 'USD' }
    }
  }
  const value = {
    when,
    price: new Money(1999),
    boxed: [Object('s'), Object(2), Object(false)],
    skipped: undefined,
    zero: -0,
    big: 2 ** 53 - 1,
    text: 'emoji \ud83d\ude00 and "quotes"',
    ['__proto__']: { own: true },
    nested: { list: [null, true, 1.5e300] },
    buffer: Buffer.from('hi'),
  }
  const text = jsonText(value, 'json')
  assert.equal(text, JSON.stringify(value))
  assert.deepEqual(Object.keys(JSON.parse(text)), Object.keys(value).filter((k) => k !== 'skipped'))
  assert.equal(jsonText(undefined, 'json'), undefined)
  assert.equal(jsonText('plain', 'json'), '"plain"')
})

test('getters and proxies that throw are refused with their path, not a stray exception', () => {
  const getter = {
    get secret() {
      throw new RangeError('no access')
    },
  }
  assert.throws(() => jsonText({ outer: getter }, 'json'), refused('json', 'json.outer.secret', /reading it threw: no access/))
  const revocable = Proxy.revocable({}, {})
  revocable.revoke()
  assert.throws(() => jsonText({ p: revocable.proxy }, 'json'), refused('json', 'json.p', /reading it threw/))
  const throwingToJSON = { toJSON: () => { throw new Error('nope') } }
  assert.throws(() => jsonText([throwingToJSON], 'json'), refused('json', 'json[0]', /reading it threw: nope/))
})

test('query parameters take strings, numbers, booleans, BigInts and Dates, or lists of them', async (t) => {
  const { tenant, sandbox } = setup(t)
  assert.deepEqual(
    flatQuery({ ids: [1, 2n, 'x'], on: new Date(0), active: true, none: null, gone: undefined }),
    ['ids', '1,2,x', 'on', '1970-01-01T00:00:00.000Z', 'active', 'true'],
  )
  const cases = [
    [{ filter: { a: 1 } }, 'params.filter', /expected a string, number, boolean, BigInt or Date, got an object/],
    [{ ids: [1, [2]] }, 'params.ids[1]', /got an array/],
    [{ ids: [1, null] }, 'params.ids[1]', /got null/],
    [{ n: NaN }, 'params.n', /NaN cannot be sent in a query/],
    [{ on: new Date('nope') }, 'params.on', /an invalid Date/],
    [{ q: 'a\udfffb' }, 'params.q', /lone surrogate/],
    [{ f: () => 1 }, 'params.f', /got a function/],
    [{ b: Buffer.from('x') }, 'params.b', /got a Buffer/],
    [['a', 'b'], 'params', /expected an object of name → value, got an array/],
    ['page=2', 'params', /got a string/],
    [new Map([['a', 1]]), 'params', /got a Map/],
  ]
  for (const [params, path, what] of cases) {
    await assert.rejects(tenant.get('crm/customers', { params }), refused('params', path, what), path)
  }
  const cyclic = [1]
  cyclic.push(cyclic)
  await assert.rejects(tenant.get('crm/customers', { params: { ids: cyclic } }), refused('params', 'params.ids[1]', /got an array/))
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
})

test('report parameters, sandbox options and faults go through the same checks', async (t) => {
  const { tenant, sandbox } = setup(t)
  const loop = { From: '2026-01-01' }
  loop.again = loop
  await assert.rejects(tenant.report('operations', 175, { parameters: loop }), refused('parameters', 'parameters.again', CYCLE))
  await assert.rejects(
    tenant.report('operations', 175, { parameters: { Ids: [1n] } }),
    refused('parameters', 'parameters.Ids[0]', /BigInt/),
  )
  await assert.rejects(
    tenant.report('operations', 175, { parameters: ['From'] }),
    refused('parameters', 'invalid parameters', /expected an object of name → value, got an array/),
  )
  const tenantEntry = { id: 1, clientId: 'c', clientSecret: 's', scopes: [] }
  tenantEntry.scopes.push(tenantEntry)
  assert.throws(() => new Sandbox({ tenants: [tenantEntry] }), refused('options', 'options.tenants[0].scopes[0]', CYCLE))
  assert.throws(() => new Sandbox({ latencyMs: nest(200) }), refused('options', 'options.latencyMs[0]…', /nested deeper/))
  assert.throws(() => sandbox.addFault({ route: 'crm/*', status: 500n }), refused('fault', 'fault.status', /BigInt/))
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
  // Sandbox options keep their camelCase names in errors and reach the sandbox in its own case.
  const custom = new Sandbox({ tokenLifetimeSecs: 60, tenants: [{ id: 7, clientId: 'c7', clientSecret: 's7', scopes: ['crm'] }] })
  t.after(() => custom.close())
  assert.deepEqual(custom.tenants, [{ id: 7, clientId: 'c7', clientSecret: 's7', scopes: ['crm'] }])
})

test('a refused value is described, never echoed', () => {
  const secret = 'cs1.do-not-print-me'
  const value = { password: secret, list: [secret] }
  value.list.push(value)
  assert.throws(() => jsonText(value, 'json'), (err) => {
    assert.ok(!err.message.includes(secret))
    return true
  })
  assert.throws(
    () => flatQuery({ token: { secret } }),
    (err) => !err.message.includes(secret) && /got an object/.test(err.message),
  )
})
