// Types of webhooks.js, re-exported by index.d.ts.

import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * A webhook event: the CloudEvents 1.0 envelope, plus any other attribute it carried
 * (`datacontenttype`, extensions such as `tenantid`…).
 */
export interface WebhookEvent {
  specversion: string
  /** With `source`, what identifies a retried or replayed delivery. */
  id: string
  source: string
  /** What happened, e.g. `'tn.rpr.report-data-ready'`. */
  type: string
  /** When it happened (RFC 3339), or null. */
  time: string | null
  data: any
  [attribute: string]: any
}

/** Request headers: `req.headers`, a fetch `Headers`, a `Map`, or `[name, value]` pairs. */
export type WebhookHeaders =
  | Record<string, string | string[] | undefined>
  | Headers
  | Map<string, string>
  | ReadonlyArray<readonly [string, string]>

/** The exact bytes of a delivery's body. */
export type WebhookBody = Buffer | Uint8Array | ArrayBuffer | string

/**
 * Where the signature is and how it and the envelope are read. Provisional: ServiceTitan does
 * not publish them.
 */
export interface WebhookVerifyOptions {
  /** Default `X-ServiceTitan-Signature`. Env (receivers): `ST_WEBHOOK_SIGNATURE_HEADER`. */
  signatureHeader?: string
  /** `'any'` (hex or base64, default), `'hex'` or `'base64'`. Env: `ST_WEBHOOK_SIGNATURE_ENCODING`. */
  encoding?: 'any' | 'hex' | 'base64'
  /** `'cloudevents'` (default) or `'any'` for other JSON. Env: `ST_WEBHOOK_ENVELOPE`. */
  envelope?: 'cloudevents' | 'any'
}

export interface WebhookReceiverOptions extends WebhookVerifyOptions {
  /** The app's HMAC key, 32 to 64 characters. Env: `ST_WEBHOOK_KEY`. */
  key?: string
  /** How long handled events are remembered (default one day). Env: `ST_WEBHOOK_DEDUPE_TTL_SECS`. */
  dedupeTtlMs?: number
  /** Largest body read (default 1 MiB). Env: `ST_WEBHOOK_MAX_BODY_BYTES`. */
  maxBodyBytes?: number
  /** Remember events in Redis (`SET NX PX`), shared by every worker. Env: `ST_REDIS_URL`. */
  redisUrl?: string
  /** Env: `ST_REDIS_KEY_PREFIX` (default `servicetitan`). */
  redisKeyPrefix?: string
}

/** What to answer a delivery, and what to handle. */
export interface WebhookReceipt {
  /** 200 (new or repeated event), 401 (signature), 400 (not an event), 413 (too large), 503 (Redis failed). */
  status: number
  /** The JSON body to answer with. */
  body: string
  /** The event to handle: set only the first time it arrives. */
  event: WebhookEvent | null
  /** The event was handled before (a retry or a replay). */
  duplicate: boolean
}

/** Checks a delivery's signature over the raw body and returns its event; throws WebhookVerificationError. */
export declare function verifyWebhook(
  body: WebhookBody,
  headers: WebhookHeaders,
  key: string,
  options?: WebhookVerifyOptions,
): WebhookEvent

/** The signature of `body` under `key`, as ServiceTitan sends it (to test an endpoint). */
export declare function signWebhook(body: WebhookBody, key: string, options?: { encoding?: 'hex' | 'base64' }): string

/** Verifies deliveries and lets each event (`source` + `id`) through once. */
export declare class WebhookReceiver {
  constructor(options?: WebhookReceiverOptions)
  readonly maxBodyBytes: number
  receive(body: WebhookBody, headers: WebhookHeaders): Promise<WebhookReceipt>
  /** Forgets that `event` was handled, so that its next delivery is handed over again. */
  release(event: WebhookEvent): Promise<void>
  tooLarge(): { status: 413; body: string }
}

export interface WebhookHandlerOptions extends WebhookReceiverOptions {
  /** Called after the 200 went out, once per event; if it throws, the event is released. */
  onEvent: (event: WebhookEvent) => unknown
  /** Told about a failed `onEvent` (with the event) or a failed request (event null). Default: console.error. */
  onError?: (error: unknown, event: WebhookEvent | null) => void
  /** A receiver of your own (instead of the receiver options). */
  receiver?: WebhookReceiver
}

/** A `(req, res)` handler for `http.createServer` and Express (before any body parser). */
export declare function webhookHandler(
  options: WebhookHandlerOptions,
): (req: IncomingMessage & { body?: unknown }, res: ServerResponse) => Promise<void>

/** A webhook subscription of the sandbox. */
export interface SandboxWebhookSubscription {
  /** `http://host:port/path`. */
  url: string
  /** The HMAC key the deliveries are signed with (32 to 64 characters). */
  key: string
  /** Default: the sandbox's first tenant. */
  tenantId?: number
  /** Event types to send (default: all). */
  events?: string[]
}

export interface SandboxWebhookDelivery {
  eventId: string
  type: string
  tenant: number
  subscription: number
  url: string
  state: 'pending' | 'delivered' | 'failed'
  /** Sent again by `replayWebhook`. */
  replay: boolean
  attempts: Array<{ atMs: number; status: number | null; error: string | null }>
}
