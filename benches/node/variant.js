// One measured run, in a process of its own: `node variant.js <engine|fetch> <gets|export> <json>`.
// Prints {ops, seconds, perSecond, cpuSeconds, maxRssMb} on stdout; cpuSeconds is this process's
// CPU time (user + system, every thread) over the measured part.
const { Client } = require('../../node')
const { FetchTenant } = require('./fetch-client.js')

const [side, workload, json] = process.argv.slice(2)
const { baseUrl, appKey, tenantId, clientId, clientSecret, calls, inFlight } = JSON.parse(json)
const credentials = { clientId, clientSecret }

function makeTenant() {
  if (side === 'engine') {
    const client = new Client({ appKey, authUrl: baseUrl, apiUrl: baseUrl, rateLimit: false, reportRateLimit: false })
    return client.tenant(tenantId, credentials)
  }
  return new FetchTenant({ authUrl: baseUrl, apiUrl: baseUrl, appKey, tenantId, ...credentials })
}

async function gets(tenant) {
  await tenant.get('crm/customers', side === 'engine' ? { params: { pageSize: 1 } } : { pageSize: 1 }) // token, pool warm
  let next = 0
  const cpuStarted = process.cpuUsage()
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < calls) {
        next++
        const page = side === 'engine'
          ? await tenant.get('crm/customers', { params: { page: 1, pageSize: 1 } })
          : await tenant.get('crm/customers', { page: 1, pageSize: 1 })
        if (page.data.length !== 1) throw new Error('unexpected page')
      }
    }),
  )
  return { ops: calls, started, cpuStarted }
}

async function exportAll(tenant) {
  const cpuStarted = process.cpuUsage()
  const started = process.hrtime.bigint()
  let ops = 0
  let ids = 0
  for await (const record of tenant.export('crm/customers')) {
    ops++
    ids += record.id > 0 ? 1 : 0 // touch every record, as a consumer would
  }
  if (ids !== ops) throw new Error('records without ids')
  return { ops, started, cpuStarted }
}

async function main() {
  const tenant = makeTenant()
  const { ops, started, cpuStarted } = await (workload === 'gets' ? gets(tenant) : exportAll(tenant))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const used = process.cpuUsage(cpuStarted)
  const cpuSeconds = (used.user + used.system) / 1e6
  const maxRssMb = process.resourceUsage().maxRSS / 1024
  console.log(JSON.stringify({ side, workload, ops, seconds, perSecond: ops / seconds, cpuSeconds, maxRssMb }))
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
