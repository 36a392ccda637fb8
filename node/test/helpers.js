'use strict'
// Shared by the tests: child processes that must end on their own, and sandbox credentials.

const { spawn } = require('node:child_process')
const path = require('node:path')

const FIXTURES = path.join(__dirname, 'fixtures')

/**
 * Runs `node fixtures/<name>` and resolves with { code, signal, stdout, stderr, ms }. A child
 * still running after `timeoutMs` is killed and reported with `timedOut: true`: that is the
 * failure the exit tests look for (something kept the event loop alive).
 */
function runFixture(name, { args = [], env = {}, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(process.execPath, [path.join(FIXTURES, name), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started })
    })
  })
}

/** Options of a Client talking to `sandbox` (its app key, token endpoint and API). */
function clientOptions(sandbox, extra = {}) {
  return { appKey: sandbox.appKey, authUrl: sandbox.authUrl, apiUrl: sandbox.apiUrl, ...extra }
}

/** Credentials of the sandbox tenant `id` (default: the first). */
function credentials(sandbox, id) {
  const t = id === undefined ? sandbox.tenants[0] : sandbox.tenants.find((x) => x.id === id)
  return { clientId: t.clientId, clientSecret: t.clientSecret }
}

/** A token straight from the sandbox's token endpoint, the way a hand-written client does it. */
async function fetchToken(sandbox, tenant = sandbox.tenants[0]) {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: tenant.clientId,
    client_secret: tenant.clientSecret,
  })
  const res = await fetch(`${sandbox.authUrl}/connect/token`, { method: 'POST', body })
  return { status: res.status, body: await res.json() }
}

module.exports = { runFixture, clientOptions, credentials, fetchToken, FIXTURES }
