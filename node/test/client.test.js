'use strict'
// The client against the embedded sandbox: calls, typed errors, paging, exports, reports,
// stats, debug output.

const test = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const st = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

const { Client, Sandbox } = st

function setup(t, sandboxOptions = {}, extra = {}) {
  const sandbox = new Sandbox({ rateLimit: false, ...sandboxOptions })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox, extra))
  const tenant = client.tenant(1001, credentials(sandbox, 1001))
  return { sandbox, client, tenant }
}

test('get resolves with the parsed JSON; params are sent as query', async (t) => {
  const { tenant, sandbox } = setup(t)
  const page = await tenant.get('crm/customers', { params: { page: 2, pageSize: 3, active: 'Any', unused: undefined } })
  assert.equal(page.page, 2)
  assert.equal(page.pageSize, 3)
  assert.equal(page.data.length, 3)
  assert.equal(typeof page.data[0].id, 'number')
  const one = await tenant.get(`crm/customers/${page.data[0].id}`)
  assert.equal(one.id, page.data[0].id)
  const ids = await tenant.get('crm/customers', { params: { ids: [one.id, page.data[1].id], active: 'Any' } })
  assert.deepEqual(ids.data.map((c) => c.id).sort(), [one.id, page.data[1].id].sort())
  assert.equal(sandbox.stats().routes['GET crm/v2/tenant/{tenant}/customers'], 2)
})

test('post, patch and put send JSON bodies', async (t) => {
  const { tenant } = setup(t)
  const address = { street: '1 Main St', city: 'Springfield', state: 'IL', zip: '62701', country: 'USA' }
  const created = await tenant.post('crm/customers', {
    json: { name: 'Ada Lovelace', type: 'Residential', address, locations: [{ name: 'Home', address }] },
  })
  assert.equal(created.name, 'Ada Lovelace')
  const patched = await tenant.patch(`crm/customers/${created.id}`, { json: { name: 'Ada King' } })
  assert.equal(patched.name, 'Ada King')
})

test('statuses become typed errors with the server detail', async (t) => {
  const { tenant, sandbox } = setup(t)
  await assert.rejects(tenant.get('crm/customers/999999999'), (err) => {
    assert.ok(err instanceof st.NotFoundError)
    assert.ok(err instanceof st.ServiceTitanError)
    assert.equal(err.code, 'not_found')
    assert.equal(err.status, 404)
    assert.match(err.title, /999999999/)
    assert.match(err.traceId, /^00-/)
    assert.equal(err.method, 'GET')
    assert.ok(err.url.endsWith('/crm/v2/tenant/1001/customers/999999999'))
    return true
  })
  await assert.rejects(tenant.get('crm/customers', { params: { pageSize: 0 } }), (err) => {
    assert.ok(err instanceof st.BadRequestError)
    assert.ok(Object.keys(err.errors).includes('pageSize'))
    return true
  })
  sandbox.addFault({ route: 'crm/*', status: 409, count: 1 })
  await assert.rejects(tenant.get('crm/customers'), st.ConflictError)
  const limited = new Client(clientOptions(sandbox)).tenant(1004, credentials(sandbox, 1004))
  await assert.rejects(limited.get('jpm/jobs'), (err) => {
    assert.ok(err instanceof st.PermissionDeniedError)
    assert.match(err.message, /tenant admin accepts the new app version/)
    return true
  })
})

test('a wrong secret is an AuthenticationError that names no secret', async (t) => {
  const { client } = setup(t)
  const tenant = client.tenant(1001, { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.wrong-one' })
  await assert.rejects(tenant.get('crm/customers'), (err) => {
    assert.ok(err instanceof st.AuthenticationError)
    assert.match(err.message, /environment specific/)
    assert.ok(!util.inspect(err).includes('cs1.wrong-one'))
    return true
  })
})

test('bad input is a ConfigurationError before any request', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  assert.throws(() => new Client({ ...clientOptions(sandbox), appKey: '' }), st.ConfigurationError)
  assert.throws(() => new Client({ ...clientOptions(sandbox), environment: 'staging' }), /staging/)
  assert.throws(() => new Client({ rateLimit: { calls: 5 } }), st.ConfigurationError)
  assert.throws(() => new Client({ ...clientOptions(sandbox), timeoutMs: -1 }), st.ConfigurationError)
  // Numbers the addon takes as u32 are checked, not wrapped (calls: -1 once meant no limit).
  for (const options of [
    { rateLimit: { calls: -1, periodMs: 1000 } },
    { rateLimit: { calls: 2.7, periodMs: 1000 } },
    { maxAttempts: -1 },
    { maxAttempts: 'x' },
    { reportRateLimit: { calls: 5, periodMs: Number.NaN } },
    { rateLimit: { marginMs: 50, marginAdaptive: 'no' } },
  ]) {
    assert.throws(() => new Client({ ...clientOptions(sandbox), ...options }), st.ConfigurationError, JSON.stringify(options))
  }
  // Durations beyond what the engine takes are refused by the engine, not a panic.
  assert.throws(() => new Client({ ...clientOptions(sandbox), timeoutMs: 1e22 }), st.ConfigurationError)
  const client = new Client(clientOptions(sandbox))
  assert.throws(() => client.tenant(0, credentials(sandbox)), st.ConfigurationError)
  assert.throws(() => client.tenant(1.5, credentials(sandbox)), st.ConfigurationError)
  assert.throws(() => client.tenant(1001, { clientId: '', clientSecret: 'x' }), /client id/)
  const tenant = client.tenant(1001, credentials(sandbox))
  await assert.rejects(tenant.get('https://evil.example/steal'), st.ConfigurationError)
  assert.equal(sandbox.stats().tokenRequestsTotal, 0)
  // The margin adapts unless fixed; either way calls go through.
  const fixed = new Client({ ...clientOptions(sandbox), rateLimit: { marginMs: 50, marginAdaptive: false } })
  await fixed.tenant(1002, credentials(sandbox, 1002)).get('crm/customers', { params: { pageSize: 1 } })
})

test('paginate yields every record once; break stops the read', async (t) => {
  const { tenant } = setup(t, { records: 1234 })
  const seen = new Set()
  for await (const c of tenant.paginate('crm/customers', { params: { active: 'Any' }, pageSize: 97 })) {
    assert.ok(!seen.has(c.id))
    seen.add(c.id)
  }
  assert.equal(seen.size, 1234)
  let n = 0
  for await (const _ of tenant.paginate('crm/customers', { pageSize: 10 })) {
    if (++n === 15) break
  }
  assert.equal(n, 15)
})

test('export hands out every record and a checkpoint that resumes after it', async (t) => {
  const { tenant } = setup(t, { records: 2500, exportPageSize: 1000 })
  const feed = tenant.export('crm/customers')
  assert.equal(feed.continueFrom, null)
  const ids = []
  let checkpointAt1000
  for await (const r of feed) {
    ids.push(r.id)
    if (ids.length === 999) assert.equal(feed.continueFrom, null)
    if (ids.length === 1000) checkpointAt1000 = feed.continueFrom
  }
  assert.equal(ids.length, 2500)
  assert.equal(new Set(ids).size, 2500)
  assert.equal(typeof checkpointAt1000, 'string')
  const rest = []
  const resumed = tenant.export('crm/customers', { since: checkpointAt1000 })
  assert.equal(resumed.continueFrom, checkpointAt1000)
  for await (const r of resumed) rest.push(r.id)
  assert.deepEqual(rest, ids.slice(1000))
  assert.equal(typeof resumed.continueFrom, 'string')
})

test('report resolves with rows keyed by field name', async (t) => {
  const { tenant } = setup(t, { reportRows: 1200 })
  const rows = await tenant.report('operations', 175, { parameters: { From: '2026-01-01', To: '2026-01-31' } })
  assert.equal(rows.length, 1200)
  assert.ok('JobId' in rows[0])
  await assert.rejects(tenant.report('operations', 999999), st.NotFoundError)
})

test('the report catalog resolves with plain objects under the API\'s names', async (t) => {
  const { tenant } = setup(t)
  const categories = await tenant.reportCategories()
  assert.ok(categories.map((c) => c.id).includes('operations'))
  const reports = await tenant.reports('operations', { signal: new AbortController().signal })
  assert.ok(reports.map((r) => r.id).includes(175))
  const metadata = await tenant.reportMetadata('operations', 175)
  assert.equal(metadata.id, 175)
  const from = metadata.parameters.find((p) => p.name === 'From')
  assert.equal(from.isRequired, true)
  assert.equal(from.dataType, 'Date')
  assert.equal(typeof from.isArray, 'boolean')
  assert.ok(metadata.fields.length > 0)
  assert.ok('dataType' in metadata.fields[0] && 'label' in metadata.fields[0])
  await assert.rejects(tenant.reports('no-such-category'), st.NotFoundError)
  const reason = new Error('stop')
  await assert.rejects(tenant.reportMetadata('operations', 175, { signal: AbortSignal.abort(reason) }), (err) => err === reason)
})

test('stats count requests, retries and token fetches', async (t) => {
  const { tenant, client, sandbox } = setup(t, {}, { backoff: { baseMs: 10, maxMs: 50 } })
  sandbox.addFault({ route: 'crm/*', method: 'GET', status: 503, count: 2 })
  await tenant.get('crm/customers')
  const stats = client.stats()
  assert.equal(stats.requests, 3)
  assert.equal(stats.retries, 2)
  assert.equal(stats.tokenFetches, 1)
  assert.equal(stats.rateLimited, 0)
  assert.equal(typeof stats.throttleWaitMs, 'number')
})

test('the logger receives debug lines, never a secret', async (t) => {
  const lines = []
  const { tenant, sandbox } = setup(t, {}, { logger: (r) => lines.push(r), backoff: { baseMs: 10, maxMs: 50 } })
  sandbox.addFault({ route: 'crm/*', method: 'GET', status: 503, count: 1 })
  await tenant.get('crm/customers')
  await assert.rejects(tenant.get('crm/nothing-here'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.ok(lines.length >= 2, JSON.stringify(lines))
  for (const line of lines) {
    assert.ok(['error', 'warn', 'info', 'debug', 'trace'].includes(line.level))
    assert.match(line.target, /^servicetitan/)
    for (const secret of ['cs1.sandbox-secret-1001', 'ak1.sandbox-app-key', 'Bearer ']) {
      assert.ok(!line.message.includes(secret), line.message)
    }
  }
  assert.ok(lines.some((l) => /resending/.test(l.message)), JSON.stringify(lines))
})

test('client and tenant print no secret', async (t) => {
  const { client, tenant } = setup(t)
  for (const text of [util.inspect(client), util.inspect(tenant), String(client), JSON.stringify(client)]) {
    assert.ok(!text.includes('cs1.sandbox-secret-1001'))
    assert.ok(!text.includes('ak1.sandbox-app-key'))
  }
})

test('every setting of the engine schema is an option of Client, refused by name when wrong', (t) => {
  const native = require('../native.js')
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const options = native.settings().map(([option]) => option)
  assert.ok(options.includes('rateLimit.periodMs') && options.includes('backoff.maxMs'))
  for (const option of options) {
    const [outer, inner] = option.split('.')
    const wrong = () => 1 // a function is the wrong type for every setting
    const given = inner === undefined ? { [outer]: wrong } : { [outer]: { [inner]: wrong } }
    assert.throws(
      () => new Client({ ...clientOptions(sandbox), ...given }),
      (err) => err instanceof st.ConfigurationError && err.message.includes(option),
      option,
    )
  }
})

test('half of a pair takes the other half from its environment variable', (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const saved = { ...process.env }
  t.after(() => {
    for (const name of ['ST_RATE_LIMIT_PERIOD_MS', 'ST_BACKOFF_MAX_MS']) {
      if (saved[name] === undefined) delete process.env[name]
      else process.env[name] = saved[name]
    }
  })
  new Client(clientOptions(sandbox, { rateLimit: { calls: 5 }, backoff: { baseMs: 10 } }))
  process.env.ST_RATE_LIMIT_PERIOD_MS = '0'
  assert.throws(
    () => new Client(clientOptions(sandbox, { rateLimit: { calls: 5 } })),
    (err) => err instanceof st.ConfigurationError && err.argument === 'ST_RATE_LIMIT_PERIOD_MS',
  )
  process.env.ST_BACKOFF_MAX_MS = 'soon'
  assert.throws(
    () => new Client(clientOptions(sandbox, { rateLimit: false, backoff: { baseMs: 10 } })),
    (err) => err instanceof st.ConfigurationError && err.argument === 'ST_BACKOFF_MAX_MS',
  )
})
