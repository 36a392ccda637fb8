'use strict'
// Every error the package throws or rejects with is typed: bad input at any entry point is a
// ConfigurationError (thrown at once by constructors and factories, a rejection from calls),
// with or without an AbortSignal; a panic inside the addon is an InternalError and the client
// goes on working.

const test = require('node:test')
const assert = require('node:assert/strict')
const st = require('servicetitan')
const native = require('../native.js')
const { fromNative } = require('../errors.js')
const { clientOptions, credentials } = require('./helpers.js')

const { Client, Sandbox, Tenant, ConfigurationError, ServiceTitanError, InternalError } = st

function configurationError(what) {
  return (err) => {
    assert.ok(err instanceof ConfigurationError, `${what}: ${err && err.stack}`)
    assert.ok(err instanceof ServiceTitanError)
    assert.equal(err.code, 'configuration', what)
    return true
  }
}

const cyclic = () => {
  const value = {}
  value.value = value
  return value
}

test('constructors and factories throw a ConfigurationError for bad input', (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const base = clientOptions(sandbox)
  const bad = {
    'new Client(string)': () => new Client('ak1.key'),
    'new Client(array)': () => new Client([]),
    'new Client logger': () => new Client({ ...base, logger: 'console' }),
    'new Client timeoutMs': () => new Client({ ...base, timeoutMs: '10s' }),
    'new Client timeoutMs BigInt': () => new Client({ ...base, timeoutMs: 10n }),
    'new Client maxAttempts cyclic': () => new Client({ ...base, maxAttempts: cyclic() }),
    'new Client rateLimit number': () => new Client({ ...base, rateLimit: 5 }),
    'new Client backoff text': () => new Client({ ...base, backoff: { baseMs: '5' } }),
    'new Client caCertificates': () => new Client({ ...base, caCertificates: [null] }),
    'new Client redisFallbackShare': () => new Client({ ...base, redisFallbackShare: '0.5' }),
    'new Client environment': () => new Client({ ...base, environment: 'staging' }),
    'Client.fromEnv(string)': () => Client.fromEnv('x'),
    'new Tenant()': () => new Tenant(),
    'new Sandbox(string)': () => new Sandbox('fast'),
    'new Sandbox tenants': () => new Sandbox({ tenants: 5 }),
    'new Sandbox cyclic': () => new Sandbox(cyclic()),
  }
  const client = new Client(base)
  Object.assign(bad, {
    'tenant(string)': () => client.tenant('1001', credentials(sandbox)),
    'tenant(NaN)': () => client.tenant(NaN, credentials(sandbox)),
    'tenant(id, string)': () => client.tenant(1001, 'cs1.secret'),
    'tenant empty client id': () => client.tenant(1001, { clientId: '', clientSecret: 'x' }),
  })
  const tenant = client.tenant(1001, credentials(sandbox))
  Object.assign(bad, {
    'paginate(number)': () => tenant.paginate(5),
    'paginate pageSize 0': () => tenant.paginate('crm/customers', { pageSize: 0 }),
    'paginate params cyclic': () => tenant.paginate('crm/customers', { params: { ids: [cyclic()] } }),
    'export(number)': () => tenant.export(5),
    'export since object': () => tenant.export('crm/customers', { since: {} }),
    'export params object': () => tenant.export('crm/customers', { params: { a: {} } }),
    'addFault(string)': () => sandbox.addFault('crm/*'),
    'addFault status text': () => sandbox.addFault({ route: 'crm/*', status: 'teapot' }),
  })
  for (const [what, fn] of Object.entries(bad)) assert.throws(fn, configurationError(what), what)
})

test('calls reject with a ConfigurationError for bad input, with or without a signal', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox))
  const tenant = client.tenant(1001, credentials(sandbox))
  const calls = {
    'get(number)': (o) => tenant.get(5, o),
    'get json cyclic': (o) => tenant.post('crm/customers', { ...o, json: cyclic() }),
    'get params object': (o) => tenant.get('crm/customers', { ...o, params: { filter: {} } }),
    'get safeToRetry text': (o) => tenant.post('crm/customers', { ...o, safeToRetry: 'yes' }),
    'get timeoutMs negative': (o) => tenant.get('crm/customers', { ...o, timeoutMs: -1 }),
    // Checked by the addon itself (a duration beyond what the engine holds), synchronously.
    'get timeoutMs huge': (o) => tenant.get('crm/customers', { ...o, timeoutMs: 1e22 }),
    'get url elsewhere': (o) => tenant.get('https://evil.example/steal', o),
    'report(number)': (o) => tenant.report(175, 175, o),
    'report id text': (o) => tenant.report('operations', '175', o),
    'report parameters array': (o) => tenant.report('operations', 175, { ...o, parameters: [] }),
    'reports(null)': (o) => tenant.reports(null, o),
    'reportMetadata id fraction': (o) => tenant.reportMetadata('operations', 1.5, o),
  }
  for (const [what, call] of Object.entries(calls)) {
    await assert.rejects(call(undefined), configurationError(what), what)
    await assert.rejects(call({ signal: new AbortController().signal }), configurationError(`${what}, with a signal`))
  }
  await assert.rejects(tenant.get('crm/customers', 'options'), configurationError('options text'))
  await assert.rejects(tenant.reportCategories([]), configurationError('reportCategories([])'))
  await assert.rejects(tenant.get('crm/customers', { signal: 'stop' }), configurationError('signal text'))
  await assert.rejects(tenant.paginate('crm/customers', { signal: {} }).next(), configurationError('paginate signal'))
  assert.equal(sandbox.stats().tokenRequestsTotal, 0, 'nothing reached the server')
})

test('a closed sandbox refuses with a ConfigurationError', async () => {
  const sandbox = new Sandbox()
  await sandbox.close()
  assert.throws(() => sandbox.stats(), configurationError('stats after close'))
  assert.throws(() => sandbox.addFault({ route: '*', status: 500 }), configurationError('addFault after close'))
})

test('a panic in the addon is an InternalError, thrown or rejected, and the client goes on', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false })
  t.after(() => sandbox.close())
  const client = new Client(clientOptions(sandbox))
  const tenant = client.tenant(1001, credentials(sandbox))
  await tenant.get('crm/customers')
  // The addon's own test entry: it panics inside the same guards every entry point uses.
  let thrown
  try {
    native.panicForTests(false)
  } catch (err) {
    thrown = fromNative(err)
  }
  for (const err of [thrown, await native.panicForTests(true).catch(fromNative)]) {
    assert.ok(err instanceof InternalError, String(err && err.stack))
    assert.ok(err instanceof ServiceTitanError)
    assert.equal(err.code, 'internal')
    assert.match(err.message, /^internal error in servicetitan \(a bug; the client stays usable\): a panic on purpose/)
  }
  const page = await tenant.get('crm/customers')
  assert.ok(page.data.length > 0)
  assert.equal(client.stats().requests, 2)
})

test('an error the addon did not mark is an InternalError, never a bare Error', () => {
  const err = fromNative(Object.assign(new Error('something napi said'), { code: 'GenericFailure' }))
  assert.ok(err instanceof InternalError)
  assert.match(err.message, /something napi said/)
})
