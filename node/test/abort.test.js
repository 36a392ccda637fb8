'use strict'
// AbortSignal on every call: an aborted call rejects at once with signal.reason, as fetch
// does, and gives back what it held, its place at the rate limiter included.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Client, Sandbox } = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

function setup(t, extra = {}) {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox, extra))
  return { sandbox, client, tenant: client.tenant(1001, credentials(sandbox)) }
}

const CUSTOMERS = 'GET crm/v2/tenant/{tenant}/customers'

test('a call stuck on a slow server rejects promptly with an AbortError', async (t) => {
  const { sandbox, tenant } = setup(t)
  await tenant.get('crm/customers') // the token is in hand: only the slow call is left
  sandbox.addFault({ route: 'crm/*', delayMs: 5000, count: 1 })
  const controller = new AbortController()
  const started = Date.now()
  setTimeout(() => controller.abort(), 100)
  await assert.rejects(tenant.get('crm/customers', { signal: controller.signal }), (err) => {
    assert.equal(err.name, 'AbortError')
    return true
  })
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`)
})

test('an already aborted signal sends nothing', async (t) => {
  const { sandbox, tenant } = setup(t)
  const reason = new Error('not today')
  await assert.rejects(tenant.get('crm/customers', { signal: AbortSignal.abort(reason) }), (err) => err === reason)
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
  assert.equal(sandbox.stats().routes[CUSTOMERS] ?? 0, 0)
})

test('AbortSignal.timeout rejects with its TimeoutError', async (t) => {
  const { sandbox, tenant } = setup(t)
  sandbox.addFault({ route: 'crm/*', delayMs: 5000, count: 1 })
  await assert.rejects(tenant.get('crm/customers', { signal: AbortSignal.timeout(150) }), { name: 'TimeoutError' })
})

test('an aborted call waiting for the rate limiter gives its place back', async (t) => {
  // One call per second: A takes the slot; B waits for the next one and is aborted; C, asked
  // after the abort, must get the slot B would have had, one second after A, not two.
  const { sandbox, tenant } = setup(t, { rateLimit: { calls: 1, periodMs: 1000, marginMs: 0 } })
  const t0 = Date.now()
  await tenant.get('crm/customers')
  const controller = new AbortController()
  const b = tenant.get('crm/customers', { signal: controller.signal })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const abortedAt = Date.now()
  controller.abort()
  await assert.rejects(b, { name: 'AbortError' })
  assert.ok(Date.now() - abortedAt < 50, 'the abort was not prompt')
  await tenant.get('crm/customers')
  const elapsed = Date.now() - t0
  assert.ok(elapsed < 1700, `C waited ${elapsed} ms: B's slot was not given back`)
  assert.equal(sandbox.stats().routes[CUSTOMERS], 2, 'B must never have been sent')
})

test('aborting an export stops it and the page fetched ahead', async (t) => {
  const { sandbox, tenant } = setup(t)
  const controller = new AbortController()
  const feed = tenant.export('crm/customers', { signal: controller.signal })
  let n = 0
  await assert.rejects(
    (async () => {
      for await (const _ of feed) {
        if (++n === 10) controller.abort()
      }
    })(),
    { name: 'AbortError' },
  )
  assert.equal(n, 10)
  assert.deepEqual(await feed.next(), { value: undefined, done: true })
  assert.ok(sandbox.stats().routes['GET crm/v2/tenant/{tenant}/export/customers'] <= 2)
})

test('a paginate aborted while its page is on the way rejects promptly', async (t) => {
  const { sandbox, tenant } = setup(t)
  await tenant.get('crm/customers')
  sandbox.addFault({ route: 'crm/*', delayMs: 5000, count: 1 })
  const started = Date.now()
  const iterator = tenant.paginate('crm/customers', { signal: AbortSignal.timeout(100) })
  await assert.rejects(iterator.next(), { name: 'TimeoutError' })
  assert.ok(Date.now() - started < 1000)
})

test('report takes a signal too', async (t) => {
  const { tenant } = setup(t)
  await assert.rejects(tenant.report('operations', 175, { signal: AbortSignal.abort() }), { name: 'AbortError' })
})
