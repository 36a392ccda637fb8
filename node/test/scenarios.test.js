'use strict'
// The behavioural scenarios shared by the Rust, Python and Node suites (tests/scenarios.json),
// run through the Node package. Each scenario gets a fresh sandbox and client; the vocabulary
// of the file says what every step and expectation means. Unknown keys fail the scenario, so a
// new kind of step is never silently skipped.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const util = require('node:util')
const { Client, Sandbox } = require('servicetitan')

const FILE = path.join(__dirname, '..', '..', 'tests', 'scenarios.json')
const SUITE = JSON.parse(fs.readFileSync(FILE, 'utf8'))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function camel(key) {
  return key.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
}

function camelKeys(value) {
  if (Array.isArray(value)) return value.map(camelKeys)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [camel(k), camelKeys(v)]))
}

/** `defaults` under `over`, nested objects merged one level deep. */
function merge(defaults = {}, over = {}) {
  const out = { ...defaults }
  for (const [key, value] of Object.entries(over)) {
    const base = out[key]
    out[key] =
      base && value && typeof base === 'object' && typeof value === 'object' && !Array.isArray(value)
        ? { ...base, ...value }
        : value
  }
  return out
}

function checkKeys(object, allowed, where) {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new Error(`${where}: unknown key ${JSON.stringify(key)} (runner knows ${allowed})`)
  }
}

/** The vocabulary's language-neutral client settings as ClientOptions. */
function clientOptions(settings, sandbox, logger) {
  checkKeys(
    settings,
    [
      'app_key', 'auth_url', 'api_url', 'environment', 'limits_off', 'rate_limit_calls', 'rate_limit_period_ms', 'report_rate_limit_calls',
      'report_rate_limit_period_ms', 'max_attempts', 'backoff_base_ms', 'backoff_max_ms', 'attempt_timeout_ms', 'timeout_ms',
    ],
    'client settings',
  )
  const o = {
    appKey: settings.app_key ?? sandbox.appKey,
    // The sandbox's URLs unless others are given; null gives none.
    authUrl: 'auth_url' in settings ? (settings.auth_url ?? undefined) : sandbox.authUrl,
    apiUrl: 'api_url' in settings ? (settings.api_url ?? undefined) : sandbox.apiUrl,
    environment: settings.environment,
    maxAttempts: settings.max_attempts,
    attemptTimeoutMs: settings.attempt_timeout_ms,
    timeoutMs: settings.timeout_ms,
    logger,
  }
  if (settings.limits_off) {
    o.rateLimit = false
    o.reportRateLimit = false
  }
  if (settings.rate_limit_calls !== undefined) {
    o.rateLimit = { calls: settings.rate_limit_calls, periodMs: settings.rate_limit_period_ms }
  }
  if (settings.report_rate_limit_calls !== undefined) {
    o.reportRateLimit = { calls: settings.report_rate_limit_calls, periodMs: settings.report_rate_limit_period_ms }
  }
  if (settings.backoff_base_ms !== undefined) {
    o.backoff = { baseMs: settings.backoff_base_ms, maxMs: settings.backoff_max_ms }
  }
  return o
}

const COMPARATORS = {
  eq: (a, b) => assert.deepEqual(a, b),
  ne: (a, b) => assert.notDeepEqual(a, b),
  gte: (a, b) => assert.ok(a >= b, `${a} >= ${b}`),
  lte: (a, b) => assert.ok(a <= b, `${a} <= ${b}`),
  gt: (a, b) => assert.ok(a > b, `${a} > ${b}`),
  lt: (a, b) => assert.ok(a < b, `${a} < ${b}`),
}

function compare(actual, comparator, what) {
  checkKeys(comparator, Object.keys(COMPARATORS), `comparator of ${what}`)
  for (const [op, expected] of Object.entries(comparator)) {
    try {
      COMPARATORS[op](actual, expected)
    } catch (err) {
      err.message = `${what}: ${err.message}`
      throw err
    }
  }
}

/** RFC 6901; `camelize` maps the vocabulary's snake_case member names to this package's. */
function pointer(object, ptr, camelize = false) {
  if (ptr === '') return object
  let value = object
  for (const raw of ptr.slice(1).split('/')) {
    let key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (camelize && /^[a-z]+(_[a-z0-9]+)+$/.test(key)) key = camel(key)
    if (value === null || typeof value !== 'object' || !(key in value)) return undefined
    value = value[key]
  }
  return value
}

class Run {
  constructor(scenario) {
    this.scenario = scenario
    this.sandbox = new Sandbox(camelKeys(merge(SUITE.defaults.sandbox, scenario.sandbox)))
    this.settings = merge(SUITE.defaults.client, scenario.client)
    this.logLines = []
    this.texts = [] // everything printed of clients, tenants and errors, for secrets_absent
    this.client = this.makeClient(this.settings)
    this.tenants = new Map()
  }

  makeClient(settings) {
    const client = new Client(clientOptions(settings, this.sandbox, (r) => this.logLines.push(r.message)))
    this.texts.push(util.inspect(client), String(client))
    return client
  }

  credentials(id) {
    const t = this.sandbox.tenants.find((x) => x.id === id) ?? this.sandbox.tenants[0]
    return { clientId: t.clientId, clientSecret: t.clientSecret }
  }

  tenant(id, spec = {}) {
    const custom = spec.client_id !== undefined || spec.client_secret !== undefined
    if (!custom && this.tenants.has(id)) return this.tenants.get(id)
    const creds = this.credentials(id)
    const tenant = this.client.tenant(id, {
      clientId: spec.client_id ?? creds.clientId,
      clientSecret: spec.client_secret ?? creds.clientSecret,
    })
    this.texts.push(util.inspect(tenant), String(tenant))
    if (!custom) this.tenants.set(id, tenant)
    return tenant
  }

  noteError(err) {
    this.texts.push(String(err), err.message, err.stack ?? '', util.inspect(err), JSON.stringify(err))
  }

  call(spec, tenant = this.tenant(spec.tenant, spec)) {
    return tenant[spec.method.toLowerCase()](spec.path, {
      params: spec.params,
      json: spec.json,
      safeToRetry: spec.safe_to_retry,
    })
  }

  /** Runs one step; resolves with what its `expect` is checked against. */
  async step(step) {
    const kinds = Object.keys(step).filter((k) => k !== 'expect')
    assert.equal(kinds.length, 1, `a step has exactly one action: ${JSON.stringify(step)}`)
    const [kind] = kinds
    const spec = step[kind]
    const started = Date.now()
    const out = { started }
    switch (kind) {
      case 'call':
        checkKeys(spec, ['tenant', 'method', 'path', 'params', 'json', 'safe_to_retry', 'client_id', 'client_secret'], 'call')
        try {
          out.body = await this.call(spec)
          out.ok = true
        } catch (err) {
          out.error = err
        }
        break
      case 'burst': {
        checkKeys(spec, ['tenant', 'method', 'path', 'params', 'count'], 'burst')
        const tenant = this.tenant(spec.tenant)
        const results = await Promise.allSettled(Array.from({ length: spec.count }, () => this.call(spec, tenant)))
        const failed = results.find((r) => r.status === 'rejected')
        if (failed) out.error = failed.reason
        else out.ok = true
        break
      }
      case 'saturate': {
        checkKeys(spec, ['tenants', 'workers_per_tenant', 'duration_ms', 'path', 'params'], 'saturate')
        for (const id of spec.tenants) await this.tenant(id).get(spec.path, { params: spec.params })
        await sleep(1100)
        const begin = Date.now()
        const end = begin + spec.duration_ms
        out.rates = {}
        await Promise.all(
          spec.tenants.map(async (id) => {
            const tenant = this.tenant(id)
            let done = 0
            await Promise.all(
              Array.from({ length: spec.workers_per_tenant }, async () => {
                while (Date.now() < end) {
                  await tenant.get(spec.path, { params: spec.params })
                  if (Date.now() <= end) done++
                }
              }),
            )
            out.rates[id] = done / (spec.duration_ms / 1000)
          }),
        )
        out.ok = true
        break
      }
      case 'paced': {
        checkKeys(spec, ['tenant', 'workers', 'duration_ms', 'pause_ms', 'path', 'params'], 'paced')
        const tenant = this.tenant(spec.tenant)
        const end = Date.now() + spec.duration_ms
        await Promise.all(
          Array.from({ length: spec.workers }, async () => {
            while (Date.now() < end) {
              await tenant.get(spec.path, { params: spec.params })
              await sleep(spec.pause_ms)
            }
          }),
        )
        out.ok = true
        break
      }
      case 'paginate': {
        checkKeys(spec, ['tenant', 'path', 'params', 'page_size'], 'paginate')
        out.records = []
        for await (const r of this.tenant(spec.tenant).paginate(spec.path, { params: spec.params, pageSize: spec.page_size })) {
          out.records.push(r)
        }
        break
      }
      case 'export_resume': {
        checkKeys(spec, ['tenant', 'path', 'read', 'checkpoint_after'], 'export_resume')
        const tenant = this.tenant(spec.tenant)
        const full = []
        for await (const r of tenant.export(spec.path)) full.push(r.id)
        const first = []
        let checkpoint
        const feed = tenant.export(spec.path)
        for await (const r of feed) {
          first.push(r.id)
          if (first.length === spec.checkpoint_after) checkpoint = feed.continueFrom
          if (first.length === spec.read) break
        }
        out.movedMidPage = feed.continueFrom !== checkpoint
        const resumed = []
        for await (const r of tenant.export(spec.path, { since: checkpoint })) resumed.push(r.id)
        const union = [...first.slice(0, spec.checkpoint_after), ...resumed]
        const seen = new Set(union)
        out.total = full.length
        out.lost = full.filter((id) => !seen.has(id)).length
        out.doubled = union.length - seen.size
        break
      }
      case 'report': {
        checkKeys(spec, ['tenant', 'category', 'report_id', 'parameters', 'count'], 'report')
        const tenant = this.tenant(spec.tenant)
        out.runs = await Promise.all(
          Array.from({ length: spec.count }, () => tenant.report(spec.category, spec.report_id, { parameters: spec.parameters })),
        )
        break
      }
      case 'make_client': {
        checkKeys(spec, ['client', 'tenant_id', 'client_id', 'client_secret'], 'make_client')
        try {
          const client = this.makeClient(merge(this.settings, spec.client))
          if (spec.tenant_id !== undefined || spec.client_id !== undefined || spec.client_secret !== undefined) {
            const creds = this.credentials(spec.tenant_id ?? 1001)
            client.tenant(spec.tenant_id ?? 1001, {
              clientId: spec.client_id ?? creds.clientId,
              clientSecret: spec.client_secret ?? creds.clientSecret,
            })
          }
          out.ok = true
        } catch (err) {
          out.error = err
        }
        break
      }
      case 'sandbox': {
        checkKeys(spec, ['op'], 'sandbox')
        const ops = { revoke_tokens: 'revokeTokens', clear_faults: 'clearFaults', reset_stats: 'resetStats' }
        assert.ok(ops[spec.op], `unknown sandbox op ${spec.op}`)
        this.sandbox[ops[spec.op]]()
        break
      }
      case 'fault':
        this.sandbox.addFault(camelKeys(spec))
        break
      case 'sleep_ms':
        await sleep(spec)
        break
      default:
        throw new Error(`unknown step ${JSON.stringify(kind)}`)
    }
    out.elapsed = Date.now() - started
    if (out.error) this.noteError(out.error)
    return out
  }

  check(expect = {}, out, where) {
    checkKeys(
      expect,
      [
        'ok', 'error', 'elapsed_ms', 'body', 'stats', 'client_stats', 'count', 'unique', 'rate_per_tenant', 'total', 'lost',
        'doubled', 'checkpoint_moved_mid_page', 'rows_each',
      ],
      `${where} expect`,
    )
    if (expect.error) {
      assert.ok(out.error, `${where}: expected a ${expect.error.code} error, the step succeeded`)
      this.checkError(out.error, expect.error, where)
    } else if (out.error) {
      throw Object.assign(out.error, { message: `${where}: unexpected error: ${out.error.message}` })
    }
    if (expect.ok !== undefined) assert.equal(Boolean(out.ok), expect.ok, `${where}: ok`)
    if (expect.elapsed_ms) compare(out.elapsed, expect.elapsed_ms, `${where} elapsed_ms`)
    for (const [ptr, cmp] of Object.entries(expect.body ?? {})) compare(pointer(out.body, ptr), cmp, `${where} body ${ptr}`)
    if (expect.stats) {
      const stats = this.sandbox.stats()
      for (const item of expect.stats) {
        checkKeys(item, ['pointer', 'route', ...Object.keys(COMPARATORS)], `${where} stats item`)
        const { pointer: ptr, route, ...cmp } = item
        const value = route !== undefined ? stats.routes[route] : pointer(stats, ptr, true)
        compare(value ?? 0, cmp, `${where} sandbox stats ${route ?? ptr}`)
      }
    }
    if (expect.client_stats) {
      const stats = this.client.stats()
      for (const [key, cmp] of Object.entries(expect.client_stats)) {
        assert.ok(camel(key) in stats, `${where}: unknown client stat ${key}`)
        compare(stats[camel(key)], cmp, `${where} client stats ${key}`)
      }
    }
    if (expect.count) compare(out.records.length, expect.count, `${where} count`)
    if (expect.unique) {
      const values = out.records.map((r) => r[expect.unique])
      assert.equal(new Set(values).size, values.length, `${where}: ${expect.unique} values repeat`)
    }
    if (expect.rate_per_tenant) {
      for (const [id, rate] of Object.entries(out.rates)) compare(rate, expect.rate_per_tenant, `${where} rate of tenant ${id}`)
    }
    if (expect.total) compare(out.total, expect.total, `${where} total`)
    if (expect.lost) compare(out.lost, expect.lost, `${where} lost`)
    if (expect.doubled) compare(out.doubled, expect.doubled, `${where} doubled`)
    if (expect.checkpoint_moved_mid_page !== undefined) {
      assert.equal(out.movedMidPage, expect.checkpoint_moved_mid_page, `${where}: checkpoint moved mid page`)
    }
    if (expect.rows_each) for (const rows of out.runs) compare(rows.length, expect.rows_each, `${where} rows_each`)
  }

  checkError(err, e, where) {
    checkKeys(
      e,
      [
        'code', 'status', 'title_contains', 'message_contains', 'message_lacks', 'has_trace_id', 'errors_has',
        'errors_nonempty', 'method', 'url_ends_with',
      ],
      `${where} expect.error`,
    )
    const detail = `${where}: ${err.name}: ${err.message}`
    assert.equal(err.code, e.code, detail)
    if (e.status !== undefined) assert.equal(err.status, e.status, detail)
    if (e.title_contains !== undefined) assert.ok((err.title ?? '').includes(e.title_contains), detail)
    if (e.message_contains !== undefined) assert.ok(err.message.includes(e.message_contains), detail)
    if (e.message_lacks !== undefined) assert.ok(!err.message.includes(e.message_lacks), detail)
    if (e.has_trace_id !== undefined) assert.equal(Boolean(err.traceId), e.has_trace_id, detail)
    if (e.errors_has !== undefined) assert.ok(e.errors_has in err.errors, detail)
    if (e.errors_nonempty !== undefined) assert.equal(Object.keys(err.errors).length > 0, e.errors_nonempty, detail)
    if (e.method !== undefined) assert.equal(err.method, e.method, detail)
    if (e.url_ends_with !== undefined) assert.ok((err.url ?? '').endsWith(e.url_ends_with), detail)
  }
}

for (const scenario of SUITE.scenarios) {
  test(`scenario ${scenario.id}: ${scenario.about}`, async () => {
    checkKeys(scenario, ['id', 'about', 'timing', 'sandbox', 'client', 'steps', 'expect'], `scenario ${scenario.id}`)
    const run = new Run(scenario)
    try {
      for (const [i, step] of scenario.steps.entries()) {
        const out = await run.step(step)
        run.check(step.expect, out, `${scenario.id} step ${i + 1}`)
      }
      const expect = scenario.expect ?? {}
      checkKeys(expect, ['secrets_absent'], `scenario ${scenario.id} expect`)
      if (expect.secrets_absent) {
        await sleep(50) // log lines cross from the engine's threads on the next turns
        assert.ok(run.logLines.length > 0, 'the scenario produced no log line to check')
        for (const secret of expect.secrets_absent) {
          for (const text of [...run.texts, ...run.logLines]) {
            assert.ok(!text.includes(secret), `${JSON.stringify(secret)} appears in: ${text}`)
          }
        }
      }
    } finally {
      await run.sandbox.close()
    }
  })
}
