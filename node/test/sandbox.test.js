'use strict'
// The embedded sandbox: options in camelCase, credentials, stats, faults, revocation, close.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Sandbox, ConfigurationError, ServiceTitanError } = require('servicetitan')
const { fetchToken } = require('./helpers.js')

test('a default sandbox offers the demo app key and tenants 1001-1004', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  assert.match(sandbox.baseUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(sandbox.authUrl, sandbox.baseUrl)
  assert.equal(sandbox.apiUrl, sandbox.baseUrl)
  assert.equal(sandbox.appKey, 'ak1.sandbox-app-key')
  assert.deepEqual(
    sandbox.tenants.map((x) => [x.id, x.clientId, x.scopes.join()]),
    [
      [1001, 'cid.sandbox.1001', '*'],
      [1002, 'cid.sandbox.1002', '*'],
      [1003, 'cid.sandbox.1003', '*'],
      [1004, 'cid.sandbox.1004', 'crm'],
    ],
  )
  assert.equal(sandbox.tenants[0].clientSecret, 'cs1.sandbox-secret-1001')
})

test('camelCase options reach the sandbox', async (t) => {
  const sandbox = new Sandbox({
    appKeys: ['ak1.mine'],
    tenants: [{ id: 77, clientId: 'cid.77', clientSecret: 'cs1.77', scopes: ['crm'] }],
    tokenLifetimeSecs: 42,
    rateLimit: { calls: 5, windowMs: 1000, mode: 'fixed' },
    reportLimit: false,
  })
  t.after(() => sandbox.close())
  assert.equal(sandbox.appKey, 'ak1.mine')
  assert.deepEqual(sandbox.tenants, [{ id: 77, clientId: 'cid.77', clientSecret: 'cs1.77', scopes: ['crm'] }])
  const token = await fetchToken(sandbox)
  assert.equal(token.status, 200)
  assert.equal(token.body.expires_in, 42)
})

test('unknown or invalid options are a ConfigurationError naming the option as written', () => {
  assert.throws(
    () => new Sandbox({ tokenLifetimeSec: 3 }),
    (err) => {
      assert.ok(err instanceof ConfigurationError)
      assert.ok(err instanceof ServiceTitanError)
      assert.equal(err.code, 'configuration')
      assert.match(err.message, /`tokenLifetimeSec`/)
      assert.match(err.message, /`tokenLifetimeSecs`/)
      return true
    },
  )
  assert.throws(() => new Sandbox({ tenants: [] }), ConfigurationError)
  assert.throws(() => new Sandbox('fast'), ConfigurationError)
})

test('stats count token requests per client id, in camelCase', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  await fetchToken(sandbox)
  await fetchToken(sandbox, { clientId: 'cid.sandbox.1001', clientSecret: 'wrong' })
  const stats = sandbox.stats()
  assert.equal(stats.tokenRequestsTotal, 2)
  assert.deepEqual(stats.tokenRequests, { 'cid.sandbox.1001': 2 })
  assert.equal(stats.routes['POST connect/token'], 2)
  sandbox.resetStats()
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
})

test('faults fire count times, then clear; invalid faults are refused', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  sandbox.addFault({ route: 'connect/token', status: 503, count: 1, retryAfter: '1' })
  const first = await fetchToken(sandbox)
  assert.equal(first.status, 503)
  assert.equal((await fetchToken(sandbox)).status, 200)
  assert.equal(sandbox.stats().faultsFired, 1)

  sandbox.addFault({ route: 'connect/token', status: 500, count: 0 })
  assert.equal((await fetchToken(sandbox)).status, 500)
  sandbox.clearFaults()
  assert.equal((await fetchToken(sandbox)).status, 200)

  assert.throws(() => sandbox.addFault({ route: 'x' }), ConfigurationError)
  assert.throws(() => sandbox.addFault({ route: 'x', status: 200 }), ConfigurationError)
  assert.throws(() => sandbox.addFault({ route: 'x', status: 500, colour: 'red' }), /`colour`/)
})

test('revoked tokens are refused by the API', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  const { body } = await fetchToken(sandbox)
  const call = () =>
    fetch(`${sandbox.apiUrl}/crm/v2/tenant/1001/customers?pageSize=1`, {
      headers: { authorization: `Bearer ${body.access_token}`, 'st-app-key': sandbox.appKey },
    })
  assert.equal((await call()).status, 200)
  sandbox.revokeTokens()
  assert.equal((await call()).status, 401)
})

test('close stops the server, twice is harmless, and a closed sandbox says so', async () => {
  const sandbox = new Sandbox()
  const url = sandbox.baseUrl
  assert.equal(sandbox.closed, false)
  await sandbox.close()
  await sandbox.close()
  assert.equal(sandbox.closed, true)
  await assert.rejects(fetch(`${url}/connect/token`, { method: 'POST' }))
  assert.throws(() => sandbox.stats(), /closed/)
})
