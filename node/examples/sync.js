// The demo job in Node: the same sync as the Rust demo, against the bundled sandbox.
//
// A full export of customers and invoices, a paged list of jobs, 300 single-record calls at once,
// an incremental export that picks up a change from a saved checkpoint, and a report, at the real
// service's limits; then what it cost.
//
//   node node/examples/sync.js [RECORDS]
const { Client, Sandbox } = require('servicetitan')

const pad = (n, width) => String(n).padStart(width)
const seconds = (since) => ((performance.now() - since) / 1000).toFixed(2).padStart(6)

async function main() {
  const records = Number(process.argv[2] ?? 20_000)
  if (!Number.isInteger(records) || records < 0) throw new Error(`RECORDS must be a whole number, got ${process.argv[2]}`)
  const sandbox = new Sandbox({ records })
  try {
    console.log(`sandbox at ${sandbox.baseUrl} (${records} records per resource, 60 calls/s per tenant)`)
    const client = new Client({ appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl })
    const tenant = client.tenant(1001, { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.sandbox-secret-1001' })
    const started = performance.now()

    let step = performance.now()
    const feed = tenant.export('crm/customers')
    let count = 0
    for await (const _customer of feed) count++ // a real sync would upsert the record here
    const checkpoint = feed.continueFrom
    console.log(`customers  full export     ${pad(count, 7)} records  ${seconds(step)} s`)

    step = performance.now()
    const invoices = []
    for await (const invoice of tenant.export('accounting/invoices')) invoices.push(invoice)
    console.log(`invoices   full export     ${pad(invoices.length, 7)} records  ${seconds(step)} s`)

    step = performance.now()
    const jobs = []
    for await (const job of tenant.paginate('jpm/jobs', { params: { active: 'Any' }, pageSize: 500 })) jobs.push(job)
    console.log(`jobs       paged list      ${pad(jobs.length, 7)} records  ${seconds(step)} s`)

    // 300 single-record calls at once: five seconds' worth of the tenant's budget. The limiter
    // spreads them out so that the server never has to answer 429.
    step = performance.now()
    const details = await Promise.all(jobs.slice(0, 300).map((job) => tenant.get(`jpm/jobs/${job.id}`)))
    console.log(`jobs       300 GETs by id  ${pad(details.length, 7)} records  ${seconds(step)} s`)

    // Something changes at the tenant; the next incremental sync picks up just that.
    const address = { street: '1 Demo Way', city: 'Austin', state: 'TX', zip: '78701', country: 'USA' }
    const created = await tenant.post('crm/customers', {
      json: { name: 'New Customer', address, locations: [{ name: 'Home', address }] },
    })
    step = performance.now()
    const changes = []
    for await (const change of tenant.export('crm/customers', { since: checkpoint })) changes.push(change)
    console.log(`customers  incremental     ${pad(changes.length, 7)} records  ${seconds(step)} s  (created id ${created.id})`)

    step = performance.now()
    const rows = await tenant.report('operations', 175, { parameters: { From: '2026-01-01' } })
    console.log(`report 175 all pages       ${pad(rows.length, 7)} rows     ${seconds(step)} s`)

    const stats = client.stats()
    const server = sandbox.stats().tenants['1001']
    console.log(
      `\ntotal ${seconds(started).trim()} s: ${stats.requests} API calls, ${stats.retries} retries, ` +
        `${stats.rateLimited} answered 429 (server rejected ${server.rejected}), ` +
        `${stats.tokenFetches} token request(s), ${(stats.throttleWaitMs / 1000).toFixed(2)} s in all (summed over calls) waiting for the rate limiter; ` +
        `the server saw at most ${server.maxInWindow} calls in one second`,
    )
  } finally {
    await sandbox.close()
  }
}

main().catch((err) => {
  console.error(`${err.name}: ${err.message}`)
  process.exitCode = 1
})
