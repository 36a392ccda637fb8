'use strict'
// Webhooks: verification, deduplication, the (req, res) handler with http and Express, and the
// sandbox's deliveries (retried after failures) reaching it exactly once per event.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const Module = require('node:module')
const express = require('express')
const st = require('servicetitan')
const { verifyWebhook, signWebhook, WebhookReceiver, webhookHandler, Sandbox, Client } = st
const { clientOptions } = require('./helpers.js')

const KEY = 'node-webhook-key-0123456789abcde'
const HEADER = 'X-ServiceTitan-Signature'
const redisUrl = process.env.ST_TEST_REDIS_URL

function eventBody(id = 'evt-1', extra = {}) {
  return Buffer.from(
    JSON.stringify({
      specversion: '1.0',
      id,
      source: '/tenant/1001/crm/customers',
      type: 'tn.crm.customer-created',
      time: '2026-01-01T00:00:00Z',
      data: { id: 42, name: 'Ada' },
      ...extra,
    }),
  )
}

const signed = (body, key = KEY) => ({ [HEADER]: signWebhook(body, key) })

async function waitUntil(what, done, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

async function post(port, body, headers, method = 'POST') {
  const response = await fetch(`http://127.0.0.1:${port}/hooks`, { method, body: method === 'GET' ? undefined : body, headers })
  const text = await response.text()
  return { status: response.status, json: text ? JSON.parse(text) : null }
}

// -------------------------------------------------------------------------------------------
// verifyWebhook

test('a signed delivery verifies, whatever shape the body and headers come in', () => {
  const body = eventBody('evt-1', { tenantid: 1001 })
  const signature = signWebhook(body, KEY)
  for (const headers of [
    { [HEADER]: signature },
    { 'x-servicetitan-signature': [signature] },
    new Headers({ [HEADER]: signature }),
    new Map([[HEADER, signature]]),
    [['content-type', 'application/json'], [HEADER, signature]],
  ]) {
    const event = verifyWebhook(body, headers, KEY)
    assert.deepEqual([event.id, event.type, event.time, event.data], ['evt-1', 'tn.crm.customer-created', '2026-01-01T00:00:00Z', { id: 42, name: 'Ada' }])
    assert.equal(event.tenantid, 1001)
    assert.equal(event.specversion, '1.0')
  }
  assert.equal(verifyWebhook(body.toString(), { [HEADER]: signature }, KEY).id, 'evt-1')
  assert.equal(verifyWebhook(new Uint8Array(body), { [HEADER]: signature }, KEY).id, 'evt-1')
  const b64 = signWebhook(body, KEY, { encoding: 'base64' })
  assert.equal(verifyWebhook(body, { [HEADER]: b64 }, KEY).id, 'evt-1')
  assert.equal(verifyWebhook(body, { 'x-sig': signature }, KEY, { signatureHeader: 'X-Sig' }).id, 'evt-1')
})

test('tampered, wrongly keyed, unsigned and malformed deliveries are refused without leaking the key', () => {
  const body = eventBody()
  const otherKey = 'another-node-key-0123456789abcde'
  const tampered = Buffer.from(body.toString().replace('Ada', 'Eve'))
  for (const [what, sent, headers, expected] of [
    ['tampered', tampered, signed(body), /does not match/],
    ['wrong key', body, signed(body, otherKey), /does not match/],
    ['missing header', body, { 'content-type': 'application/json' }, /no X-ServiceTitan-Signature header/],
    ['malformed', body, { [HEADER]: 'abc' }, /not an HMAC-SHA256 signature/],
    ['two headers', body, [[HEADER, signWebhook(body, KEY)], [HEADER, signWebhook(body, KEY)]], /2 X-ServiceTitan-Signature headers/],
  ]) {
    assert.throws(
      () => verifyWebhook(sent, headers, KEY),
      (err) => {
        assert.ok(err instanceof st.WebhookVerificationError, what)
        assert.ok(err instanceof st.ServiceTitanError)
        assert.equal(err.code, 'webhook')
        assert.match(err.message, expected, what)
        const text = `${err.message} ${JSON.stringify(err)} ${err.stack}`
        for (const secret of [KEY, otherKey, signWebhook(sent, KEY)]) assert.ok(!text.includes(secret), `${what}: ${text}`)
        return true
      },
    )
  }
})

test('bad keys and arguments are configuration errors', () => {
  assert.throws(() => verifyWebhook(eventBody(), {}, 'tiny-secret'), (err) => {
    assert.ok(err instanceof st.ConfigurationError)
    assert.match(err.message, /32 to 64 characters/)
    assert.ok(!err.message.includes('tiny-secret'))
    return true
  })
  assert.throws(() => verifyWebhook(42, {}, KEY), st.ConfigurationError)
  assert.throws(() => verifyWebhook(eventBody(), [['only-a-name']], KEY), /headers\[0\]/)
  assert.throws(() => new WebhookReceiver({ key: KEY, encoding: 'rot13' }), /signature_encoding|encoding/)
  assert.throws(() => webhookHandler({ key: KEY }), (err) => {
    assert.ok(err instanceof st.ConfigurationError, String(err))
    assert.match(err.message, /invalid onEvent: expected a function/)
    return true
  })
  assert.throws(() => webhookHandler(null), st.ConfigurationError)
  assert.throws(() => new WebhookReceiver('not options'), st.ConfigurationError)
})

// -------------------------------------------------------------------------------------------
// WebhookReceiver

test('the receiver hands an event over once until it is released', async () => {
  const receiver = new WebhookReceiver({ key: KEY })
  const body = eventBody('evt-once')
  const [a, b] = await Promise.all([receiver.receive(body, signed(body)), receiver.receive(body, signed(body))])
  assert.deepEqual([a.status, b.status], [200, 200])
  assert.deepEqual([a.duplicate, b.duplicate].sort(), [false, true])
  const first = a.event ?? b.event
  assert.equal(first.id, 'evt-once')
  assert.deepEqual(JSON.parse((a.duplicate ? a : b).body), { status: 'duplicate' })
  await receiver.release(first)
  assert.ok((await receiver.receive(body, signed(body))).event)
  const refused = await receiver.receive(body, signed(body, 'another-node-key-0123456789abcde'))
  assert.equal(refused.status, 401)
  assert.match(JSON.parse(refused.body).error, /does not match/)
})

// -------------------------------------------------------------------------------------------
// The handler, with http and with Express

function recorder() {
  const events = []
  let failNext = false
  return {
    events,
    failOnce() {
      failNext = true
    },
    async onEvent(event) {
      if (failNext) {
        failNext = false
        throw new Error('the database is down')
      }
      events.push(event)
    },
  }
}

test('with http: acknowledges, dedupes, refuses, limits and releases on failure', async (t) => {
  const seen = recorder()
  const errors = []
  const server = http.createServer(
    webhookHandler({ key: KEY, maxBodyBytes: 4096, onEvent: seen.onEvent, onError: (err) => errors.push(err) }),
  )
  const port = await listen(server)
  t.after(() => server.close())
  const body = eventBody('evt-http')
  assert.deepEqual(await post(port, body, signed(body)), { status: 200, json: { status: 'accepted' } })
  assert.deepEqual(await post(port, body, signed(body)), { status: 200, json: { status: 'duplicate' } })
  await waitUntil('the event was handled', () => seen.events.length === 1)
  assert.equal((await post(port, Buffer.concat([body, Buffer.from(' ')]), signed(body))).status, 401)
  assert.equal((await post(port, body, {})).status, 401)
  const big = Buffer.alloc(5000, 'x')
  assert.equal((await post(port, big, signed(big))).status, 413)
  assert.equal((await post(port, body, {}, 'GET')).status, 405)

  const other = eventBody('evt-http-fails')
  seen.failOnce()
  assert.equal((await post(port, other, signed(other))).status, 200)
  await waitUntil('the failure was reported', () => errors.length === 1)
  assert.match(errors[0].message, /database is down/)
  assert.equal((await post(port, other, signed(other))).status, 200) // released: handled this time
  await waitUntil('both events were handled', () => seen.events.length === 2)
  assert.deepEqual(seen.events.map((e) => e.id), ['evt-http', 'evt-http-fails'])
})

test('with Express: before any body parser, or after express.raw(); a parsed body is refused clearly', async (t) => {
  const seen = recorder()
  const app = express()
  app.post('/hooks', webhookHandler({ key: KEY, onEvent: seen.onEvent }))
  app.post('/raw', express.raw({ type: '*/*' }), webhookHandler({ key: KEY, onEvent: seen.onEvent }))
  const errors = []
  app.post('/parsed', express.json({ type: '*/*' }), webhookHandler({ key: KEY, onEvent: seen.onEvent, onError: (e) => errors.push(e) }))
  const server = http.createServer(app)
  const port = await listen(server)
  t.after(() => server.close())
  const a = eventBody('evt-express-a')
  const b = eventBody('evt-express-b')
  const at = (p, body) =>
    fetch(`http://127.0.0.1:${port}${p}`, {
      method: 'POST',
      body,
      headers: { ...signed(body), 'content-type': 'application/cloudevents+json' },
    })
  assert.equal((await at('/hooks', a)).status, 200)
  assert.equal((await at('/raw', b)).status, 200)
  await waitUntil('both handled', () => seen.events.length === 2)
  const parsed = await at('/parsed', eventBody('evt-express-c'))
  assert.equal(parsed.status, 500)
  assert.match((await parsed.json()).error, /already parsed.*express\.raw/)
  assert.equal(errors.length, 1)
})

// -------------------------------------------------------------------------------------------
// The sandbox delivers to the handler, through retries

/**
 * Fails deliveries on purpose in front of the handler: the first arrival of every event is
 * answered 503 unread, and the handler's 200 to the first event that arrives a second time
 * becomes a 500, as if the acknowledgement were lost (handled: its retry must not be).
 */
function flaky(handler) {
  const arrivals = new Map()
  const state = { lost: null, arrivals }
  const server = http.createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = Buffer.concat(chunks)
    const id = JSON.parse(body.toString()).id
    const n = (arrivals.get(id) ?? 0) + 1
    arrivals.set(id, n)
    if (n === 1) {
      res.writeHead(503).end()
      return
    }
    req.body = body // as express.raw() would leave it
    if (n === 2 && state.lost === null) {
      state.lost = id
      const writeHead = res.writeHead.bind(res)
      res.writeHead = (status, ...rest) => writeHead(status === 200 ? 500 : status, ...rest)
    }
    await handler(req, res)
  })
  return { server, state }
}

function newCustomer(name) {
  const address = { street: '1 Main St', city: 'Springfield', state: 'IL', zip: '62701', country: 'USA' }
  return { name, type: 'Residential', address, locations: [{ name: 'Home', address }] }
}

test('the sandbox delivers with retries, and each event reaches the handler exactly once', async (t) => {
  const sandbox = new Sandbox({ rateLimit: false, webhookTimeScale: 0.01 })
  t.after(() => sandbox.close())
  const seen = recorder()
  const { server, state } = flaky(webhookHandler({ key: KEY, onEvent: seen.onEvent }))
  const port = await listen(server)
  t.after(() => server.close())
  sandbox.registerWebhook({ url: `http://127.0.0.1:${port}/hooks`, key: KEY, tenantId: 1001 })

  const client = new Client(clientOptions(sandbox))
  const tenant = client.tenant(1001, { clientId: 'cid.sandbox.1001', clientSecret: 'cs1.sandbox-secret-1001' })
  const created = []
  for (const name of ['Ada Lovelace', 'Grace Hopper']) created.push((await tenant.post('crm/customers', { json: newCustomer(name) })).id)
  await tenant.patch(`crm/customers/${created[1]}`, { json: { name: 'Grace B. Hopper' } })

  await waitUntil('every delivery ended', () => {
    const d = sandbox.webhookDeliveries()
    return d.length === 3 && d.every((x) => x.state !== 'pending')
  })
  await waitUntil('every event was handled', () => seen.events.length >= 3)
  const deliveries = sandbox.webhookDeliveries()
  assert.deepEqual(deliveries.map((d) => d.state), ['delivered', 'delivered', 'delivered'])
  // 503 then 200 for each; 503, 500 (the lost acknowledgement) then 200 for one of them.
  assert.deepEqual(deliveries.map((d) => d.attempts.length).sort(), [2, 2, 3])
  assert.equal(deliveries.find((d) => d.attempts.length === 3).eventId, state.lost)
  const key = (e) => `${e.id ?? e.eventId} ${e.type}`
  assert.deepEqual(seen.events.map(key).sort(), deliveries.map(key).sort())
  assert.equal(seen.events.find((e) => e.type === 'tn.crm.customer-updated').data.name, 'Grace B. Hopper')

  // A replay from the portal (same id) is acknowledged, not handed over again.
  const replayed = deliveries.find((d) => d.attempts.length === 2).eventId
  assert.equal(sandbox.replayWebhook(replayed), 1)
  await waitUntil('the replay was delivered', () => sandbox.webhookDeliveries().at(-1).state === 'delivered')
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(seen.events.length, 3)
  assert.equal(state.arrivals.get(replayed), 3)
})

test('the sandbox webhook controls check their arguments', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  assert.throws(() => sandbox.registerWebhook({ url: 'http://127.0.0.1:9/', key: 'short' }), /32 to 64/)
  assert.throws(() => sandbox.registerWebhook({ url: 'https://example.com/', key: KEY }), /http:\/\//)
  const id = sandbox.registerWebhook({ url: 'http://127.0.0.1:9/', key: KEY, events: ['tn.test.ping'] })
  assert.deepEqual(sandbox.webhookSubscriptions(), [
    { id, tenant: 1001, url: 'http://127.0.0.1:9/', key: '***', events: ['tn.test.ping'] },
  ])
  assert.match(sandbox.sendWebhookEvent({ type: 'tn.test.ping', data: { n: 1 } }), /^[0-9a-f-]{36}$/)
  assert.throws(() => sandbox.replayWebhook('nope'), /no event/)
  sandbox.clearWebhooks()
  assert.deepEqual(sandbox.webhookSubscriptions(), [])
})

// -------------------------------------------------------------------------------------------
// Redis: workers dedupe together

test('receivers sharing Redis hand an event over once between them', { skip: !redisUrl && 'ST_TEST_REDIS_URL is not set' }, async () => {
  const redisKeyPrefix = `node-webhooks-${process.pid}-${Date.now()}`
  const workers = [0, 1, 2].map(() => new WebhookReceiver({ key: KEY, redisUrl, redisKeyPrefix }))
  const body = eventBody('evt-redis')
  const receipts = await Promise.all([...workers, ...workers].map((w) => w.receive(body, signed(body))))
  assert.deepEqual(receipts.map((r) => r.status), [200, 200, 200, 200, 200, 200])
  assert.equal(receipts.filter((r) => r.event !== null).length, 1)
})

// -------------------------------------------------------------------------------------------
// The README's Express example, run as written

test("the README's Express example receives a signed delivery", async (t) => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8')
  const match = /```js express\n([\s\S]*?)```/.exec(readme)
  assert.ok(match, 'no ```js express block in the README')
  const file = path.join(__dirname, '..', 'readme-express.js')
  const m = new Module(file, module)
  m.filename = file
  m.paths = Module._nodeModulePaths(path.dirname(file))
  const saved = process.env.ST_WEBHOOK_KEY
  process.env.ST_WEBHOOK_KEY = KEY
  try {
    m._compile(match[1], file)
  } finally {
    if (saved === undefined) delete process.env.ST_WEBHOOK_KEY
    else process.env.ST_WEBHOOK_KEY = saved
  }
  const { app, handled } = m.exports
  const server = http.createServer(app)
  const port = await listen(server)
  t.after(() => server.close())
  const body = eventBody('evt-readme')
  const url = `http://127.0.0.1:${port}/servicetitan/webhooks`
  assert.equal((await fetch(url, { method: 'POST', body, headers: signed(body) })).status, 200)
  await waitUntil('the README handler got the event', () => handled.length === 1)
  assert.equal(handled[0].id, 'evt-readme')
  assert.equal((await fetch(url, { method: 'POST', body, headers: { [HEADER]: '0'.repeat(64) } })).status, 401)
})
