'use strict'
// The API by name: every one of the 563 operations called as tenant.<module>.<resource>.<action>
// against the sandbox, names derived by the rules, list calls awaited (a page) or iterated (every
// record), exports as feeds, files as Buffers, arguments checked before anything is sent, and
// tsc passing on the typed example and failing on mistakes in it.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, spawnSync } = require('node:child_process')
const st = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

const ROOT = path.join(__dirname, '..', '..')
const TABLE = JSON.parse(fs.readFileSync(path.join(ROOT, 'crates/servicetitan/src/operations/table.json'), 'utf8'))
const CATALOGUE = JSON.parse(fs.readFileSync(path.join(ROOT, 'crates/servicetitan-sandbox/catalogue.json'), 'utf8'))
const SPECS = new Map(CATALOGUE.operations.map((op) => [`${op.method} ${op.path}`, op]))

// ---------------------------------------------------------------------------------------------
// Schemas: a minimal request body, and the violations of an answer

function resolve(schema) {
  for (let i = 0; i < 16; i++) {
    if (schema && schema.$ref) schema = CATALOGUE.schemas[schema.$ref]
    else if (schema && Array.isArray(schema.oneOf) && schema.oneOf.length === 1) schema = schema.oneOf[0]
    else break
  }
  return schema
}

function example(schema, depth = 0) {
  schema = resolve(schema)
  if (!schema || typeof schema !== 'object' || depth > 24) return null
  if (schema.enum) return schema.enum[0]
  for (const key of ['oneOf', 'anyOf', 'allOf']) if (schema[key]?.length) return example(schema[key][0], depth + 1)
  const type = schema.type ?? (schema.properties ? 'object' : null)
  if (type === 'object') {
    const out = {}
    for (const k of schema.required ?? []) if (schema.properties?.[k]) out[k] = example(schema.properties[k], depth + 1)
    return out
  }
  if (type === 'array') return []
  if (type === 'string') {
    const guid = '00000000-0000-0000-0000-000000000000'
    const text = { 'date-time': '2026-01-01T00:00:00Z', date: '2026-01-01', uuid: guid, guid }[schema.format] ?? ''
    return text.padEnd(schema.minLength ?? 0, 'x')
  }''
  return { integer: 0, number: 0, boolean: false }[type] ?? null
}

function violations(schema, value, where = '$') {
  if (value === null && schema?.nullable) return []
  schema = resolve(schema)
  if (!schema || typeof schema !== 'object') return []
  if (value === null) return schema.type ? [`${where}: null`] : []
  for (const key of ['oneOf', 'anyOf']) {
    if (schema[key]?.length) {
      const found = schema[key].map((alt) => violations(alt, value, where))
      return found.some((v) => v.length === 0) ? [] : found[0]
    }
  }
  if (schema.enum && !schema.enum.includes(value)) return [`${where}: ${JSON.stringify(value)} not in the enum`]
  const is = {
    integer: (v) => Number.isInteger(v),
    number: (v) => typeof v === 'number',
    string: (v) => typeof v === 'string',
    boolean: (v) => typeof v === 'boolean',
    array: (v) => Array.isArray(v),
    object: (v) => typeof v === 'object' && !Array.isArray(v),
  }
  if (is[schema.type] && !is[schema.type](value)) return [`${where}: not ${schema.type}`]
  const out = []
  if (Array.isArray(value)) value.forEach((item, i) => out.push(...violations(schema.items, item, `${where}[${i}]`)))
  else if (typeof value === 'object') {
    for (const k of schema.required ?? []) if (!(k in value)) out.push(`${where}.${k}: missing`)
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties?.[k]) out.push(...violations(schema.properties[k], v, `${where}.${k}`))
      else if (schema.additionalProperties === false) out.push(`${where}.${k}: not in the schema`)
    }
  }
  return out
}

function successSchema(op) {
  const responses = SPECS.get(`${op.method} ${op.path}`).responses
  const code = Object.keys(responses).filter((c) => c.startsWith('2')).sort()[0]
  return code === undefined ? null : responses[code]
}

function recordSchema(op) {
  return resolve(successSchema(op))?.properties?.data?.items
}

// ---------------------------------------------------------------------------------------------
// Arguments for any operation

const GUID_1 = '00000000-0000-4000-8000-000000000001' // the sandbox's record 1 where ids are GUIDs

function exampleArg(p) {
  const first = p.enum ? p.enum[0] : undefined
  let scalar = { integer: 1, number: 1, boolean: true }[p.items ?? p.type]
  if (scalar === undefined) {
    scalar = { 'date-time': '2026-01-01T00:00:00Z', date: '2026-01-01', uuid: GUID_1, guid: GUID_1 }[p.format] ?? '1'
  }
  if (p.type === 'array') return [first ?? scalar]
  if (p.type === 'object') return {}
  return first ?? scalar
}

function operationOf(tenant, op) {
  return op.node.reduce((target, part) => target[part], tenant)
}

// The first record of the list at `listPath` (a template), with the path values chosen so far.
async function firstRecord(tenant, listPath, chosen) {
  const list = TABLE.operations.find((o) => o.path === listPath && o.method === 'GET')
  if (!list) return undefined
  const params = {}
  for (const p of list.params) {
    if (p.in === 'path') {
      if (!(p.name in chosen)) return undefined
      params[p.name] = chosen[p.name]
    } else if (p.name === 'pageSize') params.pageSize = 1
    else if (p.name === 'active') params.active = 'Any' // the first record whatever its state
    else if (p.required) params[p.name] = exampleArg(p)
  }
  try {
    const answer = await operationOf(tenant, list)(params)
    const records = Array.isArray(answer) ? answer : answer?.data
    return Array.isArray(records) && records[0] && typeof records[0] === 'object' ? records[0] : undefined
  } catch {
    return undefined
  }
}

// Path and required query parameters, and the body. A path parameter right after a list's path
// takes the id of that list's first record (its field named like the parameter, or its id).
async function argumentsOf(tenant, op) {
  const special = { report_category: 'operations', reportId: 175, dynamicSetId: 'business-units' }
  const pathParams = new Map(op.params.filter((p) => p.in === 'path').map((p) => [p.name, p]))
  const segments = op.path.split('/')
  const params = {}
  for (let i = 0; i < segments.length; i++) {
    const name = segments[i].startsWith('{') ? segments[i].slice(1, -1) : undefined
    if (name === undefined || !pathParams.has(name)) continue
    if (name in special) {
      params[name] = special[name]
      continue
    }
    const record = await firstRecord(tenant, segments.slice(0, i).join('/'), params)
    params[name] = record?.[name] ?? record?.id ?? exampleArg(pathParams.get(name))
  }
  for (const p of op.params) if (p.in === 'query' && p.required) params[p.name] = exampleArg(p)
  const spec = SPECS.get(`${op.method} ${op.path}`)
  if (op.id === 'ReportCategoryReports_GetData') {
    params.body = { parameters: [{ name: 'From', value: '2026-01-01' }, { name: 'To', value: '2026-01-31' }] }
  } else if (spec.body) {
    params.body = example(spec.body)
  }
  return params
}

function routeCount(sandbox, route) {
  return sandbox.stats().routes[route] ?? 0
}

// ---------------------------------------------------------------------------------------------

test('every operation is called by its Node name', async (t) => {
  const sandbox = new st.Sandbox({ rateLimit: false, reportLimit: false, records: 25 })
  t.after(() => sandbox.close())
  const client = new st.Client(clientOptions(sandbox, { maxAttempts: 1 }))
  const tenant = client.tenant(1001, credentials(sandbox))
  assert.equal(TABLE.operations.length, 563)
  let ok = 0
  const failed = []
  for (const op of TABLE.operations) {
    const route = `${op.method} ${op.path}`
    const name = op.node.join('.')
    const params = await argumentsOf(tenant, op)
    const before = routeCount(sandbox, route)
    let result
    try {
      const call = operationOf(tenant, op)(params, { signal: AbortSignal.timeout(30_000) })
      if (op.kind === 'export') {
        result = []
        for await (const record of call) result.push(record)
      } else {
        result = await call
      }
    } catch (err) {
      assert.ok(err instanceof st.ServiceTitanError, `${name}: ${err.stack}`)
      assert.ok(!(err instanceof st.ConfigurationError), `${name}: ${err.message}`)
      failed.push(`${name}: ${err.message}`)
      result = undefined
    }
    if (result !== undefined) {
      ok++
      let found
      if (op.kind === 'list') {
        assert.ok(Array.isArray(result.data) && typeof result.hasMore === 'boolean', name)
        found = result.data.flatMap((r) => violations(recordSchema(op), r))
      } else if (op.kind === 'export') {
        found = result.flatMap((r) => violations(recordSchema(op), r))
      } else if (op.kind === 'binary') {
        assert.ok(Buffer.isBuffer(result) && result.length > 0, name)
        found = []
      } else if (op.kind === 'redirect') {
        // The file's URL, not followed: the sandbox serves the file there.
        assert.ok(typeof result === 'string' && result.startsWith(sandbox.baseUrl), `${name}: ${result}`)
        const file = await fetch(result)
        assert.ok(file.status === 200 && (await file.arrayBuffer()).byteLength > 0, name)
        found = []
      } else {
        found = violations(successSchema(op), result)
      }
      assert.deepEqual(found.slice(0, 5), [], `${name} breaks its schema`)
    }
    const after = routeCount(sandbox, route)
    if (op.kind === 'export') assert.ok(after >= before + 1, `${name} did not reach ${route}`)
    else assert.equal(after, before + 1, `${name} did not reach ${route} once`)
  }
  console.log(`563 of 563 operations reached by their Node names, ${ok} answered 2xx (schema-valid)`)
  assert.deepEqual(failed, [])
  assert.equal(ok, 563)
})

function camel(name) {
  const parts = name.split(/[-_.]/).filter(Boolean)
  return parts[0][0].toLowerCase() + parts[0].slice(1) + parts.slice(1).map((p) => p[0].toUpperCase() + p.slice(1)).join('')
}

test('names follow the rules, and every one resolves on a tenant', (t) => {
  const expected = new Set()
  for (const op of CATALOGUE.operations) {
    const stem = CATALOGUE.modules[op.module].spec.replace(/\.json$/, '').replace(/-v2$/, '')
    expected.add([camel(stem), ...op.id.split('_').map(camel)].join('.'))
  }
  assert.ok(expected.has('crm.customers.getList') && expected.has('marketingReputation.reviews'))
  assert.ok(expected.has('crm.exportCustomers.getCustomers') && expected.has('customerInteractions.technicianRatings.getList'))
  const names = TABLE.operations.map((op) => op.node.join('.'))
  assert.equal(new Set(names).size, 563)
  assert.deepEqual(new Set(names), expected)

  const sandbox = new st.Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const tenant = new st.Client(clientOptions(sandbox)).tenant(1001, credentials(sandbox))
  for (const op of TABLE.operations) assert.equal(typeof operationOf(tenant, op), 'function', op.node.join('.'))
  // Modules are built once per tenant and are the same object after.
  assert.equal(tenant.crm, tenant.crm)
  assert.equal(tenant.crm.customers, tenant.crm.customers)
  assert.equal(tenant.crm.customer, undefined)
})

test('a list call is a page when awaited and every record when iterated', async (t) => {
  const sandbox = new st.Sandbox({ rateLimit: false, records: 1000 })
  t.after(() => sandbox.close())
  const tenant = new st.Client(clientOptions(sandbox)).tenant(1001, credentials(sandbox))

  const page = await tenant.crm.customers.getList({ pageSize: 300, active: 'Any', includeTotal: true })
  assert.deepEqual([page.data.length, page.hasMore, page.totalCount, page.page, page.pageSize], [300, true, 1000, 1, 300])
  sandbox.resetStats()
  const ids = []
  for await (const c of tenant.crm.customers.getList({ pageSize: 300, active: 'Any' })) ids.push(c.id)
  assert.equal(new Set(ids).size, 1000)
  // Iterated directly, the call is the paginator's alone: four pages, none fetched twice.
  assert.equal(routeCount(sandbox, 'GET crm/v2/tenant/{tenant}/customers'), 4)
  // A page iterates on through the pages after it.
  const fromPage = []
  for await (const c of page) fromPage.push(c.id)
  assert.deepEqual(fromPage, ids)
  // From a later page on.
  const later = []
  for await (const c of tenant.crm.customers.getList({ page: 3, pageSize: 300, active: 'Any' })) later.push(c.id)
  assert.deepEqual(later, ids.slice(600))

  // Exports: the engine's feed, resumable.
  const feed = tenant.crm.exportCustomers.getCustomers()
  let n = 0
  for await (const _ of feed) n++
  assert.equal(n, 1000)
  const checkpoint = feed.continueFrom
  assert.ok(checkpoint)
  let again = 0
  for await (const _ of tenant.crm.exportCustomers.getCustomers({ since: checkpoint })) again++
  assert.equal(again, 0)

  // A lookup agrees with the list.
  const customer = await tenant.crm.customers.get({ id: page.data[4].id })
  assert.deepEqual(customer, page.data[4])
  const created = await tenant.crm.customers.create({
    body: { name: 'Ada', type: 'Residential', address: { street: 'a', city: 'b', state: 'c', zip: 'd', country: 'US' }, locations: [{ name: 'Home', address: { street: 'a', city: 'b', state: 'c', zip: 'd', country: 'US' } }] },
  })
  assert.ok(created.id > 0)
})

test('bad arguments are refused before anything is sent, and a signal cancels', async (t) => {
  const sandbox = new st.Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const tenant = new st.Client(clientOptions(sandbox)).tenant(1001, credentials(sandbox))
  const customers = tenant.crm.customers
  sandbox.resetStats()
  const cases = [
    [() => customers.getList({ page_size: 5 }), 'page_size', 'did you mean pageSize?'],
    [() => customers.getList({ pageSise: 5 }), 'pageSise', 'did you mean pageSize?'],
    [() => customers.get({}), 'id', 'missing'],
    [() => customers.get(), 'id', 'missing'],
    [() => customers.get({ id: '7' }), 'id', 'takes an integer as id, not a string'],
    [() => customers.getList({ pageSize: 2.5 }), 'pageSize', 'an integer'],
    [() => customers.getList({ active: 'Maybe' }), 'active', 'one of True, Any, False'],
    [() => customers.get({ id: 1, body: { x: 1 } }), 'body', 'takes no body'],
    [() => customers.get({ id: 1n }), 'params', 'BigInt'],
    [() => customers.get({ id: 1, extra: undefined, since: 'x' }), 'since', 'no parameter'],
  ]
  for (const [call, argument, text] of cases) {
    await assert.rejects(
      async () => call(),
      (err) => {
        assert.ok(err instanceof st.ConfigurationError, err.stack)
        assert.ok(err.message.includes(text), `${text} not in: ${err.message}`)
        assert.ok(err.argument === argument || err.message.includes(argument), `${argument}: ${err.argument}`)
        return true
      },
    )
  }
  assert.throws(() => tenant.crm.exportCustomers.getCustomers({ form: 'x' }), /did you mean from\?/)
  assert.throws(() => customers.getList({ pageSzie: 1 })[Symbol.asyncIterator](), st.ConfigurationError)
  assert.deepEqual(sandbox.stats().routes, {})

  const aborted = AbortSignal.abort(new Error('stop'))
  await assert.rejects(customers.getList({}, { signal: aborted }), /stop/)
  await assert.rejects(customers.get({ id: 1 }, { signal: aborted }), /stop/)
})

test('require stays lazy: no module table loads until a module is used', () => {
  const code = `
    const st = require('servicetitan')
    const loaded = () => Object.keys(require.cache).filter((f) => f.includes('${path.sep}api${path.sep}')).map((f) => path.basename(f))
    const path = require('node:path')
    console.log(JSON.stringify(loaded()))
    const sandbox = new st.Sandbox()
    const tenant = new st.Client({ appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl }).tenant(1001, { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.sandbox-secret-1001' })
    tenant.crm.customers.getList
    console.log(JSON.stringify(loaded()))
    sandbox.close()
  `
  const out = execFileSync(process.execPath, ['-e', code], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  const [before, after] = out.trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(before, ['index.js'])
  assert.deepEqual(after, ['index.js', 'crm.js'])
})

// ---------------------------------------------------------------------------------------------
// Types

function tsc(dir) {
  const tsconfig = {
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', types: ['node'], typeRoots: [path.join(__dirname, '..', 'node_modules', '@types')] },
    files: ['operations.ts'],
  }
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig))
  const bin = path.join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc')
  return spawnSync(process.execPath, [bin, '-p', dir], { encoding: 'utf8', timeout: 300_000 })
}

test('tsc passes on the typed example and fails on mistakes in it', { timeout: 900_000 }, () => {
  const source = fs.readFileSync(path.join(__dirname, '..', 'examples', 'operations.ts'), 'utf8')
  const calls = new Set(source.match(/tenant\.\w+\.\w+(\.\w+)?\(/g))
  const modules = new Set([...calls].map((c) => c.split('.')[1]))
  assert.ok(calls.size >= 20 && modules.size >= 10, `${calls.size} calls in ${modules.size} modules`)

  // A project inside the package, so that `servicetitan` resolves to it as it does for users.
  const dir = fs.mkdtempSync(path.join(__dirname, '..', 'examples', '.tsc-'))
  try {
    fs.writeFileSync(path.join(dir, 'operations.ts'), source)
    const good = tsc(dir)
    assert.equal(good.status, 0, good.stdout + good.stderr)

    const mistakes = [
      ["getList({ pageSize: 5, active: 'Any'", "getList({ pageSize: '5', active: 'Any'", "Type 'string' is not assignable to type 'number'"],
      ["active: 'Any', includeTotal", "active: 'Maybe', includeTotal", `Type '"Maybe"' is not assignable`],
      ['(c.active) active.push(c.name)', '(c.actve) active.push(c.name)', "Property 'actve' does not exist"],
      ['tenant.crm.customers.get({ id: first.id }', 'tenant.crm.customer.get({ id: first.id }', "Property 'customer' does not exist"],
      ['const name: string =', 'const name: number =', "Type 'string' is not assignable to type 'number'"],
      ["{ name: 'Ada Lovelace', type", '{ type', "Property 'name' is missing"],
      ['jobs.getList({ pageSize: 3 })', 'jobs.getList({ page_size: 3 })', "'page_size' does not exist"],
      ['appointments.get({ id: 1 })', 'appointments.get({})', "Property 'id' is missing"],
    ]
    for (const [good, bad, needle] of mistakes) {
      assert.ok(source.includes(good), good)
      fs.writeFileSync(path.join(dir, 'operations.ts'), source.replace(good, bad))
      const run = tsc(dir)
      assert.notEqual(run.status, 0, `tsc accepted: ${bad}`)
      assert.ok((run.stdout + run.stderr).includes(needle), `${needle} not in:\n${run.stdout}${run.stderr}`)
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('generated files say so', () => {
  for (const file of fs.readdirSync(path.join(__dirname, '..', 'api'))) {
    const first = fs.readFileSync(path.join(__dirname, '..', 'api', file), 'utf8').split('\n')[0]
    assert.match(first, /generated by tools\/gen_operations\.py/, file)
  }
})
