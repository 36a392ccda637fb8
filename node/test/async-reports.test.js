'use strict'
// Asynchronous reports: a query that takes time is polled to its end; an aborted call leaves no
// query running on the sandbox. And parameters given by the names of a dynamic value set.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Client, Sandbox, BadRequestError } = require('servicetitan')
const { clientOptions } = require('./helpers.js')

const CREDENTIALS = { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.sandbox-secret-1001' }
const parameters = { From: '2026-01-01' }

async function waitUntil(what, done, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a slow report is polled to its end under one report slot', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false, reportQueryMs: 300 })
  t.after(() => sandbox.close())
  const tenant = new Client(clientOptions(sandbox)).tenant(1001, CREDENTIALS)
  const rows = await tenant.report('operations', 175, { parameters })
  assert.equal(rows.length, 2500)
  const stats = sandbox.stats()
  assert.equal(stats.reportQueries.started, 1)
  assert.ok(stats.reportQueries.pendingPolls >= 1, JSON.stringify(stats.reportQueries))
  assert.equal(stats.reportQueries.deleted, 0)
  assert.equal(stats.reports['1001/175'].admitted, 1)
})

test('an aborted report is deleted on the sandbox', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false, reportQueryMs: 60_000 })
  t.after(() => sandbox.close())
  const tenant = new Client(clientOptions(sandbox)).tenant(1001, CREDENTIALS)
  const controller = new AbortController()
  const run = tenant.report('operations', 175, { parameters, signal: controller.signal })
  await waitUntil('the query was polled', () => sandbox.stats().reportQueries.pendingPolls >= 1)
  controller.abort()
  await assert.rejects(run, { name: 'AbortError' })
  await waitUntil('the query was deleted', () => sandbox.stats().reportQueries.deleted === 1)
  assert.equal(sandbox.stats().reportQueries.started, 1)
})

test('report parameters take names from a dynamic value set, looked up once', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false, reportLimit: false })
  t.after(() => sandbox.close())
  const tenant = new Client(clientOptions(sandbox)).tenant(1001, CREDENTIALS)
  const named = { From: '2026-01-01', BusinessUnitIds: ['Plumbing', 'hvac'] }
  assert.equal((await tenant.report('operations', 175, { parameters: named })).length, 2500)
  assert.equal((await tenant.report('operations', 175, { parameters: named })).length, 2500)
  assert.equal(sandbox.stats().routes['GET reporting/v2/tenant/{tenant}/dynamic-value-sets/{dynamicSetId}'], 1)
  await assert.rejects(
    tenant.report('operations', 175, { parameters: { From: '2026-01-01', BusinessUnitIds: ['Roofing'] } }),
    (err) => err instanceof BadRequestError && /neither a value nor a name/.test(err.message),
  )
})
