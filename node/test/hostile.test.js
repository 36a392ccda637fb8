'use strict'
// The hostile-server cases shared by the Rust, Python and Node suites (tests/hostile.json),
// played through the Node package. A small server written here on raw sockets plays the token
// endpoint and the API from each case's replies (bare CRs, header floods, stalls, resets,
// drips, endless bodies and gzip bombs need more than node:http allows); a capture server on
// another port, where redirects point, must never see a connection. The vocabulary of the
// file says what every key means; unknown keys fail the case.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const util = require('node:util')
const zlib = require('node:zlib')
const { Client, ServiceTitanError } = require('servicetitan')

const FILE = path.join(__dirname, '..', '..', 'tests', 'hostile.json')
const SUITE = JSON.parse(fs.readFileSync(FILE, 'utf8'))
const CREDENTIALS = SUITE.credentials
const SECRETS = [CREDENTIALS.app_key, CREDENTIALS.client_secret]

/** An endless body stops here if the client never does (past the engine's 256 MiB cap). */
const ENDLESS_LIMIT = 320 * 1024 * 1024
const SPACES = Buffer.alloc(64 * 1024, 0x20)

function checkKeys(object, allowed, where) {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw new Error(`${where}: unknown key ${JSON.stringify(key)} (runner knows ${allowed})`)
  }
}

/** Inside a json reply, '@N' stands for N letters 'x'. */
function expand(value) {
  if (typeof value === 'string') {
    const m = /^@(\d+)$/.exec(value)
    return m ? 'x'.repeat(Number(m[1])) : value
  }
  if (Array.isArray(value)) return value.map(expand)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]))
  }
  return value
}

const gzipCache = new Map()
/** The gzip of `n` zero bytes, made by streaming (never `n` bytes in memory at once). */
async function gzipZeros(n) {
  if (!gzipCache.has(n)) {
    const gzip = zlib.createGzip({ level: 9 })
    const parts = []
    gzip.on('data', (d) => parts.push(d))
    const done = new Promise((resolve, reject) => {
      gzip.on('end', resolve)
      gzip.on('error', reject)
    })
    const zeros = Buffer.alloc(1024 * 1024)
    for (let left = n; left > 0; left -= zeros.length) {
      const chunk = left >= zeros.length ? zeros : zeros.subarray(0, left)
      if (!gzip.write(chunk)) await new Promise((resolve) => gzip.once('drain', resolve))
    }
    gzip.end()
    await done
    gzipCache.set(n, Buffer.concat(parts))
  }
  return gzipCache.get(n)
}

function head(status, headers) {
  let text = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value}\r\n`
  return text + '\r\n'
}

/** Writes `chunk`, waiting while the socket's buffer is full; false once the socket is gone. */
async function write(socket, chunk) {
  if (socket.destroyed || socket.writableEnded) return false
  if (socket.write(chunk)) return true
  return new Promise((resolve) => {
    const done = (ok) => {
      socket.off('drain', onDrain)
      socket.off('close', onClose)
      resolve(ok)
    }
    const onDrain = () => done(true)
    const onClose = () => done(false)
    socket.on('drain', onDrain)
    socket.on('close', onClose)
  })
}

const REPLY_KEYS = [
  'status', 'headers', 'json', 'text', 'redirect', 'body_bytes', 'endless', 'content_length', 'gzip_zeros',
  'body_hex', 'nested', 'raw_head', 'headers_flood', 'stall', 'reset', 'drip_ms',
]

/** The hostile server: token endpoint and API, each answering from its list of replies. */
class HostileServer {
  constructor(capturePort) {
    this.capturePort = capturePort
    this.replies = { token: [], api: [] }
    this.counts = { token: 0, api: 0 }
    this.sockets = new Set()
    this.timers = new Set()
    this.server = net.createServer((socket) => this.#accept(socket))
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = this.server.address().port
    this.url = `http://127.0.0.1:${this.port}`
  }

  /** From now on, normal answers only (the check that the client is still usable). */
  behave() {
    this.replies = { token: [], api: [] }
  }

  async close() {
    for (const timer of this.timers) clearInterval(timer)
    for (const socket of this.sockets) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }

  #accept(socket) {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = Buffer.alloc(0)
    let handled = false
    socket.on('data', (data) => {
      if (handled) return
      buffered = Buffer.concat([buffered, data])
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      const lines = buffered.subarray(0, end).toString('latin1').split('\r\n')
      const [method, target] = lines[0].split(' ')
      const length = Number(/^content-length:\s*(\d+)/im.exec(lines.join('\n'))?.[1] ?? 0)
      if (buffered.length < end + 4 + length) return
      handled = true
      const kind = method === 'POST' && target.endsWith('/connect/token') ? 'token' : 'api'
      const list = this.replies[kind]
      const index = this.counts[kind]++
      const reply = list.length === 0 ? null : list[Math.min(index, list.length - 1)]
      this.#answer(socket, kind, reply).catch(() => socket.destroy())
    })
  }

  async #answer(socket, kind, reply) {
    if (reply === null) {
      const normal =
        kind === 'token'
          ? { access_token: `tok-${this.counts.token}`, expires_in: 900 }
          : { page: 1, pageSize: 1, hasMore: false, data: [{ id: 1 }] }
      return this.#body(socket, 200, {}, 'application/json', Buffer.from(JSON.stringify(normal)))
    }
    checkKeys(reply, REPLY_KEYS, 'reply')
    const status = reply.status ?? 200
    const headers = reply.headers ?? {}
    if (reply.json !== undefined) {
      return this.#body(socket, status, headers, 'application/json', Buffer.from(JSON.stringify(expand(reply.json))))
    }
    if (reply.redirect !== undefined) {
      const location =
        reply.redirect === 'capture' ? `http://127.0.0.1:${this.capturePort}/steal` : `${this.url}/elsewhere`
      return this.#body(socket, status, { ...headers, Location: location }, null, Buffer.alloc(0))
    }
    if (reply.content_length !== undefined) {
      await write(socket, head(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': reply.content_length }))
      await write(socket, reply.text ?? '')
      return socket.end()
    }
    if (reply.text !== undefined) return this.#body(socket, status, headers, 'text/plain', Buffer.from(reply.text))
    if (reply.body_hex !== undefined) {
      return this.#body(socket, status, headers, 'application/json', Buffer.from(reply.body_hex, 'hex'))
    }
    if (reply.nested !== undefined) {
      return this.#body(socket, status, headers, 'application/json', Buffer.from('['.repeat(reply.nested)))
    }
    if (reply.gzip_zeros !== undefined) {
      const body = await gzipZeros(reply.gzip_zeros)
      return this.#body(socket, status, { ...headers, 'Content-Encoding': 'gzip' }, 'application/json', body)
    }
    if (reply.body_bytes !== undefined || reply.endless) {
      const total = reply.endless ? ENDLESS_LIMIT : reply.body_bytes
      await write(socket, head(status, { ...headers, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }))
      if (!(await write(socket, '1\r\n[\r\n'))) return
      for (let sent = 0; sent < total; sent += SPACES.length) {
        const chunk = SPACES.subarray(0, Math.min(SPACES.length, total - sent))
        if (!(await write(socket, `${chunk.length.toString(16)}\r\n`))) return
        if (!(await write(socket, chunk))) return
        if (!(await write(socket, '\r\n'))) return
      }
      // An endless body past the limit: the client did not stop reading. Hold the socket.
      if (reply.endless) return
      await write(socket, '0\r\n\r\n')
      return socket.end()
    }
    if (reply.raw_head !== undefined) {
      await write(socket, Buffer.from(reply.raw_head, 'latin1'))
      return socket.end()
    }
    if (reply.headers_flood !== undefined) {
      await write(socket, 'HTTP/1.1 200 OK\r\n')
      const value = 'f'.repeat(1000)
      for (let i = 0; i < reply.headers_flood; i++) {
        if (!(await write(socket, `X-Flood-${i}: ${value}\r\n`))) return
      }
      await write(socket, 'Content-Length: 0\r\n\r\n')
      return socket.end()
    }
    if (reply.stall) return // answer nothing; the socket is destroyed when the client closes it
    if (reply.reset) return socket.resetAndDestroy()
    if (reply.drip_ms !== undefined) {
      await write(socket, head(200, { 'Content-Type': 'application/json', 'Content-Length': 1_000_000 }))
      const timer = setInterval(() => {
        if (socket.destroyed) {
          clearInterval(timer)
          this.timers.delete(timer)
        } else {
          socket.write(' ')
        }
      }, reply.drip_ms)
      this.timers.add(timer)
      return
    }
    throw new Error(`a reply the runner cannot play: ${JSON.stringify(reply)}`)
  }

  async #body(socket, status, headers, type, body) {
    const all = { ...headers, 'Content-Length': body.length, Connection: 'close' }
    if (type !== null) all['Content-Type'] = type
    await write(socket, head(status, all))
    await write(socket, body)
    socket.end()
  }
}

/** Counts connections: a redirect followed to it would have sent something there. */
async function captureServer() {
  const capture = { connections: 0 }
  capture.server = net.createServer((socket) => {
    capture.connections++
    socket.on('error', () => {})
    socket.destroy()
  })
  await new Promise((resolve) => capture.server.listen(0, '127.0.0.1', resolve))
  capture.port = capture.server.address().port
  return capture
}

function clientOptions(settings, server, logger) {
  checkKeys(
    settings,
    ['limits_off', 'max_attempts', 'backoff_base_ms', 'backoff_max_ms', 'attempt_timeout_ms', 'timeout_ms'],
    'client settings',
  )
  const o = {
    appKey: CREDENTIALS.app_key,
    authUrl: server.url,
    apiUrl: server.url,
    maxAttempts: settings.max_attempts,
    attemptTimeoutMs: settings.attempt_timeout_ms,
    timeoutMs: settings.timeout_ms,
    logger,
  }
  if (settings.limits_off) {
    o.rateLimit = false
    o.reportRateLimit = false
  }
  if (settings.backoff_base_ms !== undefined) o.backoff = { baseMs: settings.backoff_base_ms, maxMs: settings.backoff_max_ms }
  return o
}

function compare(actual, comparator, what) {
  checkKeys(comparator, ['eq', 'lte'], `comparator of ${what}`)
  if ('eq' in comparator) assert.equal(actual, comparator.eq, `${what}: ${actual} == ${comparator.eq}`)
  if ('lte' in comparator) assert.ok(actual <= comparator.lte, `${what}: ${actual} <= ${comparator.lte}`)
}

/** No text the package produced for this case may carry a secret. */
function assertNoSecret(text, where) {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${where} carries a secret: ${text.slice(0, 300)}`)
}

function call(tenant, spec) {
  checkKeys(spec, ['method', 'path', 'json'], 'call')
  const method = (spec.method ?? 'GET').toLowerCase()
  return tenant[method](spec.path ?? 'crm/customers', spec.json === undefined ? {} : { json: spec.json })
}

for (const c of SUITE.cases) {
  checkKeys(c, ['id', 'about', 'client', 'token', 'api', 'call', 'expect'], `case ${c.id}`)
  test(`hostile ${c.id}: ${c.about}`, { timeout: 90_000 }, async (t) => {
    const capture = await captureServer()
    t.after(() => new Promise((resolve) => capture.server.close(resolve)))
    const server = new HostileServer(capture.port)
    await server.listen()
    t.after(() => server.close())
    server.replies = { token: c.token ?? [], api: c.api ?? [] }

    const lines = []
    const settings = { ...SUITE.defaults.client, ...(c.client ?? {}) }
    const client = new Client(clientOptions(settings, server, (record) => lines.push(record.message)))
    const tenant = client.tenant(CREDENTIALS.tenant, {
      clientId: CREDENTIALS.client_id,
      clientSecret: CREDENTIALS.client_secret,
    })

    const expect = c.expect
    checkKeys(expect, ['ok', 'error', 'api_requests', 'token_requests', 'elapsed_ms'], `expect of ${c.id}`)
    const started = Date.now()
    let error = null
    try {
      await call(tenant, c.call ?? {})
    } catch (err) {
      error = err
    }
    const elapsed = Date.now() - started
    assert.equal(capture.connections, 0, 'the capture server saw a connection')

    if (error !== null) {
      for (const [text, where] of [
        [error.message, 'message'],
        [String(error.stack), 'stack'],
        [util.inspect(error, { depth: 5 }), 'inspect'],
      ]) {
        assertNoSecret(text, `the error's ${where}`)
      }
    }
    if (expect.ok) {
      assert.equal(error, null, `expected success, got ${error && `${error.code}: ${error.message.slice(0, 500)}`}`)
    } else {
      assert.ok(error !== null, 'expected an error, the call succeeded')
      assert.ok(error instanceof ServiceTitanError, `not a ServiceTitanError: ${util.inspect(error).slice(0, 500)}`)
      const e = expect.error
      checkKeys(e, ['code', 'message_contains', 'max_message_chars'], `expect.error of ${c.id}`)
      assert.equal(error.code, e.code, `code: ${error.message.slice(0, 500)}`)
      for (const part of e.message_contains ?? []) {
        assert.ok(error.message.includes(part), `message lacks ${JSON.stringify(part)}: ${error.message.slice(0, 500)}`)
      }
      if (e.max_message_chars !== undefined) {
        assert.ok(error.message.length <= e.max_message_chars, `message of ${error.message.length} chars`)
      }
    }
    if (expect.api_requests) compare(server.counts.api, expect.api_requests, 'api_requests')
    if (expect.token_requests) compare(server.counts.token, expect.token_requests, 'token_requests')
    if (expect.elapsed_ms) compare(elapsed, expect.elapsed_ms, 'elapsed_ms')

    // The client is still usable once the server behaves.
    server.behave()
    const page = await tenant.get('crm/customers')
    assert.deepEqual(page.data, [{ id: 1 }])

    await new Promise((resolve) => setTimeout(resolve, 20)) // the last log lines cross threads
    for (const line of lines) assertNoSecret(line, 'a log line')
    assert.equal(capture.connections, 0, 'the capture server saw a connection')
  })
}
