'use strict'
// worker_threads: the addon loads in several threads at once, each with its own client.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { Client, Sandbox } = require('servicetitan')
const { clientOptions, credentials, FIXTURES } = require('./helpers.js')

function runWorker(workerData) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(FIXTURES, 'worker.js'), { workerData })
    let message
    worker.on('message', (m) => (message = m))
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(message) : reject(new Error(`worker exited with ${code}`))))
  })
}

test('workers run their own clients side by side, and the main thread carries on after', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const where = { appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl }
  const results = await Promise.all([
    runWorker({ ...where, tenantId: 1001 }),
    runWorker({ ...where, tenantId: 1002 }),
    runWorker({ tenantId: 1003, ownSandbox: true }),
  ])
  for (const r of results) {
    assert.equal(r.error, undefined, r.error)
    assert.equal(r.records, 1000)
    assert.equal(r.calls, 20)
    assert.equal(r.stats.tokenFetches, 1)
  }
  assert.equal(sandbox.stats().tokenRequestsTotal, 2)
  // The workers are gone; the addon and its runtime still serve this thread.
  const tenant = new Client(clientOptions(sandbox)).tenant(1001, credentials(sandbox))
  const page = await tenant.get('crm/customers', { params: { pageSize: 5 } })
  assert.equal(page.data.length, 5)
})
