// A Node sync against the sandbox, for the README's demo command: exports customers and jobs
// from tenant 1001 with a saved checkpoint, then runs again from it (nothing new to read).
//   node node/examples/sync.js [checkpoint-file]
// With ST_APP_KEY / ST_AUTH_URL / ST_API_URL and ST_TENANT_ID / ST_CLIENT_ID / ST_CLIENT_SECRET
// set, it syncs from there instead of an embedded sandbox.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Client, Sandbox } = require('servicetitan')

async function sync(tenant, resource, checkpoints) {
  const feed = tenant.export(resource, { since: checkpoints[resource] ?? null })
  let records = 0
  for await (const record of feed) {
    records += record.id ? 1 : 0 // a real sync would upsert the record here
  }
  checkpoints[resource] = feed.continueFrom
  return records
}

async function main() {
  const file = process.argv[2] ?? path.join(os.tmpdir(), 'servicetitan-node-sync.json')
  const sandbox = process.env.ST_APP_KEY ? null : new Sandbox({ records: 20_000 })
  const client = sandbox
    ? new Client({ appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl })
    : Client.fromEnv()
  const tenant = sandbox
    ? client.tenant(1001, { clientId: sandbox.tenants[0].clientId, clientSecret: sandbox.tenants[0].clientSecret })
    : client.tenant(Number(process.env.ST_TENANT_ID))
  const checkpoints = {}
  for (const pass of ['first sync', 'second sync (from the checkpoints)']) {
    const started = Date.now()
    const counts = {}
    for (const resource of ['crm/customers', 'jpm/jobs']) counts[resource] = await sync(tenant, resource, checkpoints)
    fs.writeFileSync(file, JSON.stringify(checkpoints, null, 2))
    console.log(`node ${pass}: ${JSON.stringify(counts)} in ${Date.now() - started} ms; checkpoints in ${file}`)
  }
  console.log('client stats:', JSON.stringify(client.stats()))
  if (sandbox) await sandbox.close()
}

main().catch((err) => {
  console.error(`${err.name}: ${err.message}`)
  process.exitCode = 1
})
