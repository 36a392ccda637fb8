'use strict'
// Receiving ServiceTitan webhooks (V2): verify the signature, handle each event once, answer at
// once. Verifying and deduplicating happen in the Rust engine (bindings/node/src/webhooks.rs);
// this module converts arguments and speaks Node's HTTP: a `(req, res)` handler for `http` and
// Express.

const native = require('./native.js')
const { callNative, ConfigurationError } = require('./errors.js')
const { describe, jsonText } = require('./convert.js')
const { optionsObject, requiredString } = require('./options.js')

/** The exact bytes of a body: a Buffer (or any Uint8Array, ArrayBuffer) or a string (UTF-8). */
function bodyBuffer(body) {
  if (Buffer.isBuffer(body)) return body
  if (typeof body === 'string') return Buffer.from(body, 'utf8')
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  if (body instanceof ArrayBuffer) return Buffer.from(body)
  throw new ConfigurationError(
    `invalid body: expected the raw request body as a Buffer or string (the signature covers the exact bytes), got ${describe(body)}`,
    { argument: 'body' },
  )
}

/**
 * Headers as the addon takes them, `[name, value, …]`, from `req.headers` (values may be
 * arrays), a fetch `Headers`, a `Map`, or `[name, value]` pairs.
 */
function flatHeaders(headers) {
  const flat = []
  const push = (name, value) => {
    if (value == null) return
    for (const v of Array.isArray(value) ? value : [value]) flat.push(String(name), String(v))
  }
  if (headers == null) return flat
  if (Array.isArray(headers)) {
    headers.forEach((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new ConfigurationError(`invalid headers: headers[${i}] is not a [name, value] pair`, { argument: 'headers' })
      }
      push(pair[0], pair[1])
    })
  } else if (typeof headers.entries === 'function') {
    for (const [name, value] of headers.entries()) push(name, value)
  } else if (typeof headers === 'object') {
    for (const [name, value] of Object.entries(headers)) push(name, value)
  } else {
    throw new ConfigurationError(`invalid headers: expected an object, Headers or [name, value] pairs, got ${describe(headers)}`, {
      argument: 'headers',
    })
  }
  return flat
}

function verifyOptions(options) {
  return { signatureHeader: options.signatureHeader, encoding: options.encoding, envelope: options.envelope }
}

/**
 * Checks a delivery's HMAC-SHA256 signature over the raw `body` and returns its event
 * (`specversion`, `id`, `source`, `type`, `time`, `data`, and any other attribute). Throws a
 * `WebhookVerificationError` that never contains the key or the expected signature.
 *
 * @example
 * const event = verifyWebhook(rawBody, req.headers, process.env.ST_WEBHOOK_KEY)
 */
function verifyWebhook(body, headers, key, options = {}) {
  if (typeof key !== 'string') {
    throw new ConfigurationError(`invalid key: expected the app's HMAC key as a string, got ${describe(key)}`, {
      argument: 'key',
    })
  }
  const buffer = bodyBuffer(body)
  const flat = flatHeaders(headers)
  return JSON.parse(callNative(() => native.verifyWebhook(buffer, flat, key, verifyOptions(options))))
}

/** The signature of `body` under `key` (`encoding`: `'hex'`, default, or `'base64'`), to test an endpoint. */
function signWebhook(body, key, options = {}) {
  const buffer = bodyBuffer(body)
  return callNative(() => native.signWebhook(buffer, key, options.encoding))
}

/**
 * Verifies deliveries and lets each event (`source` + `id`) through once: the part of a
 * webhook endpoint that is the same in every framework. Every option falls back to its
 * environment variable (`ST_WEBHOOK_KEY`, `ST_WEBHOOK_SIGNATURE_HEADER`,
 * `ST_WEBHOOK_SIGNATURE_ENCODING`, `ST_WEBHOOK_ENVELOPE`, `ST_WEBHOOK_DEDUPE_TTL_SECS`,
 * `ST_WEBHOOK_MAX_BODY_BYTES`, `ST_REDIS_URL`, `ST_REDIS_KEY_PREFIX`), then its default.
 */
class WebhookReceiver {
  #native

  /** @param {import('./webhooks').WebhookReceiverOptions} [options] */
  constructor(options = {}) {
    optionsObject(options)
    for (const name of ['dedupeTtlMs', 'maxBodyBytes']) {
      const value = options[name]
      if (value != null && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
        throw new ConfigurationError(`invalid ${name}: expected a non-negative number, got ${JSON.stringify(value)}`, {
          argument: name,
        })
      }
    }
    this.#native = callNative(
      () =>
        new native.NativeWebhookReceiver({
          key: options.key,
          signatureHeader: options.signatureHeader,
          encoding: options.encoding,
          envelope: options.envelope,
          dedupeTtlMs: options.dedupeTtlMs,
          maxBodyBytes: options.maxBodyBytes,
          redisUrl: options.redisUrl,
          redisKeyPrefix: options.redisKeyPrefix,
        }),
    )
  }

  /** The largest body accepted, in bytes. */
  get maxBodyBytes() {
    return this.#native.maxBodyBytes
  }

  /**
   * Verifies and deduplicates one delivery. Never rejects for a bad delivery: the receipt says
   * what to answer (`status`, `body`), and `event` is set only the first time an event arrives.
   */
  async receive(body, headers) {
    const buffer = bodyBuffer(body)
    const flat = flatHeaders(headers)
    const r = await this.#native.receive(buffer, flat)
    return { status: r.status, body: r.body, event: r.event == null ? null : JSON.parse(r.event), duplicate: r.duplicate }
  }

  /** Forgets that `event` was handled, so that a retry or replay of it is handed over again. */
  async release(event) {
    try {
      await this.#native.release(JSON.stringify(event))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** `{ status: 413, body }` for a body found too large before it was all read. */
  tooLarge() {
    return { status: 413, body: this.#native.tooLarge() }
  }
}

function send(res, status, body, extra = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra })
  res.end(body)
}

/** The raw body, or `{ tooLarge: true }`; reads the stream unless a body parser already did. */
async function readBody(req, limit) {
  if (Buffer.isBuffer(req.body) || typeof req.body === 'string') return { body: req.body }
  if (req.body != null && typeof req.body === 'object' && Object.keys(req.body).length > 0) {
    throw new ConfigurationError(
      'the request body was already parsed (express.json()?): the signature covers the raw bytes, so mount ' +
        'webhookHandler before any body parser, or after express.raw({ type: "*/*" })',
      { argument: 'req.body' },
    )
  }
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    req.resume()
    return { tooLarge: true }
  }
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      return { tooLarge: true }
    }
    chunks.push(chunk)
  }
  return { body: Buffer.concat(chunks) }
}

function defaultOnError(err, event) {
  const which = event ? ` for webhook event ${event.id} (${event.type}); it will be handled again if redelivered` : ''
  console.error(`servicetitan: webhook handling failed${which}:`, err)
}

/**
 * A `(req, res)` handler for webhook deliveries, for `http.createServer(handler)` and Express
 * (`app.post(path, handler)`, before any body parser or after `express.raw()`).
 *
 * A POST is verified and deduplicated; the answer (200, or 401/400/413/503) goes out at once;
 * then a new event goes to `onEvent(event)` (awaited). If it throws, the event is released, so
 * that a replay is handled again, and `onError(err, event)` is called (default: console.error).
 *
 * @param {import('./webhooks').WebhookHandlerOptions} options
 */
function webhookHandler(options) {
  const { onEvent, onError = defaultOnError, receiver: given, ...settings } = optionsObject(options)
  if (typeof onEvent !== 'function') {
    throw new ConfigurationError(`invalid onEvent: expected a function (event) => …, got ${describe(onEvent)}`, {
      argument: 'onEvent',
    })
  }
  if (typeof onError !== 'function') {
    throw new ConfigurationError(`invalid onError: expected a function, got ${describe(onError)}`, {
      argument: 'onError',
    })
  }
  const receiver = given ?? new WebhookReceiver(settings)

  async function handle(req, res) {
    if (req.method !== 'POST') {
      send(res, 405, '{"error":"webhook deliveries are POSTed"}', { allow: 'POST' })
      return
    }
    const read = await readBody(req, receiver.maxBodyBytes)
    if (read.tooLarge) {
      const { status, body } = receiver.tooLarge()
      send(res, status, body, { connection: 'close' })
      return
    }
    // headersDistinct keeps repeated headers apart (req.headers joins them with ", ").
    const receipt = await receiver.receive(read.body, req.headersDistinct ?? req.headers)
    send(res, receipt.status, receipt.body)
    if (receipt.event === null) return
    try {
      await onEvent(receipt.event)
    } catch (err) {
      await receiver.release(receipt.event).catch(() => {})
      onError(err, receipt.event)
    }
  }

  return function servicetitanWebhookHandler(req, res) {
    return handle(req, res).catch((err) => {
      if (!res.headersSent) send(res, 500, JSON.stringify({ error: String(err?.message ?? err) }))
      onError(err, null)
    })
  }
}

// ---------------------------------------------------------------------------------------------
// The sandbox's webhook controls (called by Sandbox in index.js, which holds the native sandbox)

function defaultTenant(config, tenantId) {
  return tenantId ?? config.tenants[0]?.id
}

function delivery(d) {
  return {
    eventId: d.event_id,
    type: d.type,
    tenant: d.tenant,
    subscription: d.subscription,
    url: d.url,
    state: d.state,
    replay: d.replay,
    attempts: d.attempts.map((a) => ({ atMs: a.at_ms, status: a.status ?? null, error: a.error ?? null })),
  }
}

const sandbox = {
  register(nativeSandbox, config, subscription) {
    const { url, key, tenantId, events } = optionsObject(subscription, 'subscription')
    requiredString(url, 'subscription.url')
    requiredString(key, 'subscription.key')
    const text = jsonText({ tenant: defaultTenant(config, tenantId), url, key, events: events ?? [] }, 'subscription')
    return callNative(() => nativeSandbox.registerWebhook(text))
  },
  subscriptions(nativeSandbox) {
    return callNative(() => nativeSandbox.webhookSubscriptions())
  },
  deliveries(nativeSandbox) {
    return callNative(() => nativeSandbox.webhookDeliveries()).map(delivery)
  },
  send(nativeSandbox, config, event) {
    const { type, data, tenantId } = optionsObject(event, 'event')
    requiredString(type, 'event.type')
    const text = jsonText(data ?? null, 'event.data')
    return callNative(() => nativeSandbox.sendWebhookEvent(defaultTenant(config, tenantId), type, text))
  },
}

module.exports = { verifyWebhook, signWebhook, WebhookReceiver, webhookHandler, sandbox }
