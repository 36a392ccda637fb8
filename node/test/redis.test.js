'use strict'
// A client with `redisUrl` against a real Redis (ST_TEST_REDIS_URL, set by scripts/test-redis.sh):
// two clients share one token and one budget. Skipped without Redis.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Client, Sandbox, APIConnectionError } = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

const redisUrl = process.env.ST_TEST_REDIS_URL
// scripts/test-redis.sh sets ST_TEST_REDIS_REQUIRED: there a skip would hide a broken setup.
const skip = !redisUrl && !process.env.ST_TEST_REDIS_REQUIRED && 'ST_TEST_REDIS_URL is not set (scripts/test-redis.sh sets it)'

test('clients with redisUrl share one token fetch and one budget', { skip }, async (t) => {
  assert.ok(redisUrl, 'ST_TEST_REDIS_URL is required here')
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  const redisKeyPrefix = `node-test-${process.pid}-${Date.now()}`
  const clients = [0, 1].map(() => new Client(clientOptions(sandbox, { redisUrl, redisKeyPrefix })))
  const tenants = clients.map((c) => c.tenant(sandbox.tenants[0].id, credentials(sandbox)))
  const started = Date.now()
  // 80 calls from two clients against 60 per second: the last 20 wait for the next window.
  await Promise.all(Array.from({ length: 80 }, (_, i) => tenants[i % 2].get('crm/customers', { params: { pageSize: 1 } })))
  assert.ok(Date.now() - started >= 1000, 'the two clients shared one budget')
  const stats = sandbox.stats()
  assert.equal(stats.tokenRequestsTotal ?? stats.token_requests_total, 1)
  assert.equal(clients[0].stats().rateLimited + clients[1].stats().rateLimited, 0)
})

test('a Redis that cannot be reached fails calls with APIConnectionError naming Redis', { skip }, async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox, { redisUrl: 'redis://:secret-pw@127.0.0.1:1', timeoutMs: 1000 }))
  const tenant = client.tenant(sandbox.tenants[0].id, credentials(sandbox))
  await assert.rejects(tenant.get('crm/customers'), (err) => {
    assert.ok(err instanceof APIConnectionError || err.code === 'timeout', `${err.code}: ${err.message}`)
    assert.ok(!err.message.includes('secret-pw'))
    return true
  })
})
