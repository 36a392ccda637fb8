'use strict'
// A secret given with the wrong type (a Buffer from readFileSync, a number, an object, an
// array…) is refused with a ConfigurationError naming the option and the type expected, and
// the secret appears nowhere: not in the message, the stack or util.inspect of the error.

const test = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const st = require('servicetitan')
const native = require('../native.js')
const { fromNative } = require('../errors.js')

const { Client, ConfigurationError, ServiceTitanError } = st

const BASE = { appKey: 'ak1.placeholder', authUrl: 'http://127.0.0.1:9', apiUrl: 'http://127.0.0.1:9' }
const SECRET = 'S3cr3t-Value-9482'
const DIGITS = 918273645546372

/** Every form a secret of the wrong type may take, and the texts that would betray it. */
function wrongTypes() {
  const bytes = Buffer.from(SECRET)
  return [
    ['a Buffer', bytes, [SECRET, [...bytes].join(','), bytes.toString('hex'), bytes.toString('base64')]],
    ['a typed array', new Uint8Array(bytes), [SECRET, [...bytes].join(',')]],
    ['a number', DIGITS, [String(DIGITS)]],
    ['a BigInt', BigInt(DIGITS), [String(DIGITS)]],
    ['an object', { value: SECRET }, [SECRET]],
    ['an array', [SECRET], [SECRET]],
    ['a boxed string', Object(SECRET), [SECRET]],
    ['a function', () => SECRET, [SECRET]],
    ['a boolean', true, []],
    ['a symbol', Symbol(SECRET), [SECRET]],
  ]
}

function assertRefused(err, argument, betrayals, what) {
  assert.ok(err instanceof ConfigurationError, `${what}: not a ConfigurationError: ${util.inspect(err)}`)
  assert.ok(err instanceof ServiceTitanError)
  assert.equal(err.code, 'configuration')
  assert.equal(err.argument, argument, what)
  assert.match(err.message, new RegExp(`^invalid ${argument}: expected a string(, got |$)`), what)
  for (const text of [err.message, String(err.stack), util.inspect(err, { depth: 10, showHidden: true })]) {
    for (const betrayal of betrayals) assert.ok(!text.includes(betrayal), `${what}: the error shows ${betrayal}: ${text}`)
  }
  return true
}

const CLIENT_SECRETS = ['appKey', 'redisUrl', 'redisTokenKey', 'authUrl', 'apiUrl', 'redisKeyPrefix', 'environment']

test('client options that hold secrets refuse every wrong type without echoing it', () => {
  let count = 0
  for (const option of CLIENT_SECRETS) {
    for (const [kind, value, betrayals] of wrongTypes()) {
      assert.throws(
        () => new Client({ ...BASE, [option]: value }),
        (err) => assertRefused(err, option, betrayals, `${option} as ${kind}`),
      )
      count++
    }
  }
  assert.equal(count, CLIENT_SECRETS.length * wrongTypes().length)
})

test('tenant credentials refuse every wrong type without echoing it', () => {
  const client = new Client(BASE)
  for (const option of ['clientSecret', 'clientId']) {
    for (const [kind, value, betrayals] of wrongTypes()) {
      const credentials = { clientId: 'cid.x', clientSecret: 'cs1.x', [option]: value }
      assert.throws(
        () => client.tenant(1001, credentials),
        (err) => assertRefused(err, option, betrayals, `${option} as ${kind}`),
      )
    }
  }
})

test('a secret read as a Buffer is told how to read it as text', () => {
  assert.throws(
    () => new Client({ ...BASE, appKey: Buffer.from(SECRET) }),
    /got a Buffer \(read the file as text: readFileSync\(path, 'utf8'\)\.trim\(\)\)/,
  )
})

test("napi's own conversion errors, which quote the value, reach callers without it", () => {
  // The addon's classes are private; called directly they show what the package guards against.
  for (const [kind, value, betrayals] of wrongTypes()) {
    let thrown
    try {
      new native.NativeClient({ appKey: value }) // eslint-disable-line no-new
    } catch (err) {
      thrown = err
    }
    if (thrown === undefined) continue // napi took it as a string after all (none do today)
    assertRefused(fromNative(thrown), 'appKey', betrayals, `appKey as ${kind}, straight to the addon`)
  }
  const client = new native.NativeClient(BASE)
  let thrown
  try {
    client.tenant(1001, 'cid.x', Buffer.from(SECRET))
  } catch (err) {
    thrown = err
  }
  const err = fromNative(thrown)
  assert.ok(err instanceof ConfigurationError)
  assert.equal(err.message, 'invalid argument: expected a string')
  assert.ok(!util.inspect(err).includes([...Buffer.from(SECRET)].join(',')))
})

test('a secret inside a URL given as a string is never echoed by the checks either', () => {
  assert.throws(
    () => new Client({ ...BASE, authUrl: `ftp://user:${SECRET}@example.com` }),
    (err) => {
      assert.ok(err instanceof ConfigurationError, util.inspect(err))
      assert.ok(!util.inspect(err).includes(SECRET), err.message)
      return true
    },
  )
})
