'use strict'
// `npx servicetitan` (bin/servicetitan.js), run as a user runs it (a child process) against the
// sandbox: the same command line as the Rust binary and the Python console script.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const { Sandbox } = require('..')

const BIN = path.join(__dirname, '..', 'bin', 'servicetitan.js')
let sandbox

before(() => {
  sandbox = new Sandbox({ records: 30, reportRows: 40 })
})

after(async () => {
  await sandbox.close()
})

function environment(tenantId = 1001, extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ST_')))
  const tenant = sandbox.tenants.find((t) => t.id === tenantId)
  return {
    ...env,
    ST_APP_KEY: sandbox.appKey,
    ST_AUTH_URL: sandbox.authUrl,
    ST_API_URL: sandbox.apiUrl,
    ST_TENANT_ID: String(tenant.id),
    ST_CLIENT_ID: tenant.clientId,
    ST_CLIENT_SECRET: tenant.clientSecret,
    XDG_CONFIG_HOME: path.join(__dirname, 'no-such-config-dir'),
    ...extra,
  }
}

/** Runs the bin with `args`; resolves with { code, signal, stdout, stderr }. */
function servicetitan(args, { tenantId, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: environment(tenantId, env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => {
      for (const t of sandbox.tenants) assert.ok(!(stdout + stderr).includes(t.clientSecret), 'a secret was printed')
      assert.ok(!(stdout + stderr).includes(sandbox.appKey), 'the app key was printed')
      resolve({ code, signal, stdout, stderr })
    })
  })
}

const jsonl = (text) =>
  text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))

test('--help on the command and each subcommand has examples', async () => {
  const top = await servicetitan(['--help'])
  assert.equal(top.code, 0, top.stderr)
  assert.match(top.stdout, /Examples:/)
  for (const command of ['export', 'call', 'reports', 'report', 'tap', 'sandbox', 'doctor', 'streams', 'completions']) {
    const r = await servicetitan([command, '--help'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /Examples:/, command)
  }
})

test('completions for bash, zsh and fish', async () => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await servicetitan(['completions', shell])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /servicetitan/, shell)
    assert.match(r.stdout, /export/, shell)
  }
})

test('streams lists the 54 export streams', async () => {
  const r = await servicetitan(['streams'])
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.equal(lines.length, 54)
  assert.ok(lines.some((l) => l.startsWith('crm_customers ')))
})

test('call by name, one page or every page', async () => {
  let r = await servicetitan(['call', 'crm.customers.get_list', '--page-size', '5', '--active', 'Any'])
  assert.equal(r.code, 0, r.stderr)
  const page = JSON.parse(r.stdout)
  assert.equal(page.data.length, 5)
  assert.equal(page.hasMore, true)

  r = await servicetitan(['call', 'crm.customers.get_list', '--active', 'Any', '--page-size', '7', '--all'])
  assert.equal(r.code, 0, r.stderr)
  const records = jsonl(r.stdout)
  assert.equal(records.length, 30)
  assert.equal(new Set(records.map((c) => c.id)).size, 30)
})

test('a mistake exits with 2 and one line naming the flag', async () => {
  const r = await servicetitan(['call', 'crm.customers.get_list', '--page-sise', '5'])
  assert.equal(r.code, 2)
  assert.equal(r.stderr.trim().split('\n').length, 1)
  assert.match(r.stderr, /^servicetitan: .*did you mean --page-size\?/)
})

test('reports and report', async () => {
  let r = await servicetitan(['reports', 'operations'])
  assert.equal(r.code, 0, r.stderr)
  assert.ok(r.stdout.split('\n').some((l) => l.startsWith('175 ')))
  r = await servicetitan(['report', 'operations', '175', '--param', 'From=2026-01-01'])
  assert.equal(r.code, 0, r.stderr)
  const rows = jsonl(r.stdout)
  assert.equal(rows.length, 40)
  assert.equal(Object.keys(rows[0])[0], 'JobId')
})

test('doctor: all well, then a tenant that refuses APIs (exit 3)', async () => {
  let r = await servicetitan(['doctor'])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /accepted the app key/)
  r = await servicetitan(['doctor', '--json'], { tenantId: 1004 })
  assert.equal(r.code, 3)
  const refused = jsonl(r.stdout).find((c) => c.check === 'permissions' && c.status === 'fail')
  assert.match(refused.message, /23 of 24 APIs refused/)
})

test('sandbox serves until Ctrl-C, which ends it at once', async () => {
  const child = spawn(process.execPath, [BIN, 'sandbox', '--port', '0', '--records', '3'], {
    env: environment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  try {
    const lines = readline.createInterface({ input: child.stdout })
    const url = await new Promise((resolve) => lines.once('line', resolve))
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    const r = await servicetitan(['call', 'crm.customers.get_list', '--active', 'Any', '--all'], {
      env: { ST_AUTH_URL: url, ST_API_URL: url },
    })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(jsonl(r.stdout).length, 3)
    const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
    child.kill('SIGINT')
    assert.deepEqual(await closed, { code: 130, signal: null })
  } finally {
    child.kill('SIGKILL')
  }
})

test('Ctrl-C stops a call in progress', async () => {
  // The API takes a minute to answer; Ctrl-C must not wait for it.
  sandbox.addFault({ route: 'crm/*', delayMs: 60_000, status: 503, count: 1 })
  const child = spawn(process.execPath, [BIN, 'call', 'crm.customers.get_list'], {
    env: environment(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  try {
    const deadline = Date.now() + 20_000
    while (sandbox.stats().faultsFired === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.equal(sandbox.stats().faultsFired, 1, 'the call reached the server')
    const started = Date.now()
    const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
    child.kill('SIGINT')
    assert.deepEqual(await closed, { code: 130, signal: null })
    assert.ok(Date.now() - started < 5000)
  } finally {
    child.kill('SIGKILL')
    sandbox.clearFaults()
  }
})

test('export: JSONL on standard output, CSV files with a state', async () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const r = await servicetitan(['export', 'crm_customers', '--no-progress'])
  assert.equal(r.code, 0, r.stderr)
  const records = jsonl(r.stdout)
  assert.equal(records.length, 30)
  assert.equal(new Set(records.map((c) => c.id)).size, 30)

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'servicetitan-export-'))
  try {
    const args = ['export', 'crm_customers', '--format', 'csv', '--out', dir, '--state', path.join(dir, 'state.json')]
    const first = await servicetitan(args)
    assert.equal(first.code, 0, first.stderr)
    const files = () => fs.readdirSync(dir).filter((f) => f.endsWith('.csv'))
    assert.deepEqual(files(), ['crm_customers.1001.000001.csv'])
    assert.equal(fs.readFileSync(path.join(dir, files()[0]), 'utf8').trim().split('\n').length, 31)
    const again = await servicetitan(args)
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(files(), ['crm_customers.1001.000001.csv'], 'nothing changed: no new file')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('tap, also under its Singer name tap-servicetitan', async () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'servicetitan-tap-'))
  try {
    const tenant = sandbox.tenants.find((t) => t.id === 1001)
    const config = path.join(dir, 'tap.json')
    fs.writeFileSync(
      config,
      JSON.stringify({
        app_key: sandbox.appKey,
        auth_url: sandbox.authUrl,
        api_url: sandbox.apiUrl,
        tenants: [{ id: 1001, client_id: tenant.clientId, client_secret: tenant.clientSecret }],
      }),
    )
    const discovered = await servicetitan(['tap', '--config', config, '--discover'])
    assert.equal(discovered.code, 0, discovered.stderr)
    const streams = JSON.parse(discovered.stdout).streams
    assert.equal(streams.length, 54)
    for (const stream of streams) {
      for (const entry of stream.metadata) {
        if (entry.breadcrumb.length === 0) entry.metadata.selected = stream.tap_stream_id === 'crm_customers'
      }
    }
    const catalog = path.join(dir, 'catalog.json')
    fs.writeFileSync(catalog, JSON.stringify({ streams }))

    // npm links `tap-servicetitan` to the same bin; a link of that name is what runners start.
    const link = path.join(dir, 'tap-servicetitan')
    fs.symlinkSync(BIN, link)
    const run = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [link, '--config', config, '--catalog', catalog], {
        env: environment(),
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d) => (stdout += d))
      child.stderr.on('data', (d) => (stderr += d))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, stdout, stderr }))
    })
    assert.equal(run.code, 0, run.stderr)
    assert.ok(!(run.stdout + run.stderr).includes(tenant.clientSecret), 'a secret was printed')
    const messages = jsonl(run.stdout)
    assert.deepEqual(new Set(messages.map((m) => m.type)), new Set(['SCHEMA', 'RECORD', 'STATE']))
    assert.equal(messages.filter((m) => m.type === 'RECORD' && m.stream === 'crm_customers').length, 30)
    assert.equal(messages[messages.length - 1].type, 'STATE')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
