// One worker process of the multi-process Redis test (crates/servicetitan/tests/redis_processes.rs).
// Reads its settings from ST_* variables, waits for the shared start time, calls the API with
// WORKER_CONCURRENCY loops until WORKER_DURATION_MS have passed, prints one JSON line.
'use strict'

const path = require('node:path')
const { Client, APITimeoutError } = require(path.join(__dirname, '..', '..', 'node'))

async function main() {
  const start = Number(process.env.WORKER_START_AT_MS)
  const end = start + Number(process.env.WORKER_DURATION_MS)
  const concurrency = Number(process.env.WORKER_CONCURRENCY || 8)
  const client = new Client({ redisUrl: process.env.ST_REDIS_URL })
  const tenant = client.tenant(Number(process.env.ST_TENANT_ID))
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, start - Date.now())))
  let ok = 0
  const errors = {}
  async function run() {
    for (let left = end - Date.now(); left > 0; left = end - Date.now()) {
      try {
        // The deadline ends calls still waiting for a slot when the run is over.
        await tenant.get('crm/customers', { params: { pageSize: 1 }, timeoutMs: left })
        if (Date.now() <= end) ok += 1
      } catch (err) {
        if (err instanceof APITimeoutError) continue
        errors[err.code] = (errors[err.code] || 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, run))
  console.log(JSON.stringify({ language: 'node', ok, errors, stats: client.stats() }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
