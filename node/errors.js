'use strict'
// The error taxonomy of DESIGN.md as Error subclasses, so that callers can use `instanceof`
// and `err.code` alike. The addon rejects with one generic napi error whose message carries
// the fields as JSON (see bindings/node/src/error.rs); `fromNative` turns it into the class.

/** The marker the addon puts before the JSON fields of an error. */
const MARKER = 'servicetitan:'

class ServiceTitanError extends Error {
  /**
   * @param {string} message
   * @param {object} [fields] code, status, title, traceId, errors, method, url, argument, retryAfter
   */
  constructor(message, fields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause })
    this.name = new.target.name
    this.code = fields.code ?? new.target.code ?? 'unknown'
    this.status = fields.status ?? null
    this.title = fields.title ?? null
    this.traceId = fields.traceId ?? null
    this.errors = fields.errors ?? {}
    this.method = fields.method ?? null
    this.url = fields.url ?? null
  }
}

class AuthenticationError extends ServiceTitanError {}
class PermissionDeniedError extends ServiceTitanError {}
class NotFoundError extends ServiceTitanError {}
class BadRequestError extends ServiceTitanError {}
class ConflictError extends ServiceTitanError {}
class RateLimitError extends ServiceTitanError {
  constructor(message, fields = {}) {
    super(message, fields)
    /** Seconds the server asked to wait, when it said. */
    this.retryAfter = fields.retryAfterMs == null ? null : fields.retryAfterMs / 1000
  }
}
class ServerError extends ServiceTitanError {}
class APITimeoutError extends ServiceTitanError {}
class APIConnectionError extends ServiceTitanError {}
class ConfigurationError extends ServiceTitanError {
  constructor(message, fields = {}) {
    super(message, fields)
    /** The option or environment variable at fault, when known. */
    this.argument = fields.argument ?? null
  }
}
class DecodeError extends ServiceTitanError {}
/** A webhook delivery failed verification (no signature, a wrong one, or a body that is not an event). */
class WebhookVerificationError extends ServiceTitanError {}

/** code -> class, in the order of DESIGN.md's table. */
const CLASSES = {
  authentication: AuthenticationError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  bad_request: BadRequestError,
  conflict: ConflictError,
  rate_limited: RateLimitError,
  server: ServerError,
  timeout: APITimeoutError,
  connection: APIConnectionError,
  configuration: ConfigurationError,
  decode: DecodeError,
  webhook: WebhookVerificationError,
}
for (const [code, cls] of Object.entries(CLASSES)) {
  // A static code, so that `new NotFoundError('…')` in a user's own test double is complete.
  Object.defineProperty(cls, 'code', { value: code })
}

/** snake_case names in backticks (serde's messages) back to the camelCase the caller wrote. */
function camelizeNames(message) {
  return message.replace(/`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`/g, (_, name) =>
    '`' + name.replace(/_([a-z0-9])/g, (__, c) => c.toUpperCase()) + '`',
  )
}

/**
 * The public error for an error thrown by the addon; any other error is returned unchanged
 * (a TypeError for an argument of the wrong type, say).
 */
function fromNative(err) {
  if (!(err instanceof Error) || typeof err.message !== 'string' || !err.message.startsWith(MARKER)) {
    return err
  }
  let fields
  try {
    fields = JSON.parse(err.message.slice(MARKER.length))
  } catch {
    return err
  }
  const cls = CLASSES[fields.code] ?? ServiceTitanError
  const message = fields.code === 'configuration' ? camelizeNames(fields.message) : fields.message
  return new cls(message, fields)
}

module.exports = {
  ServiceTitanError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  BadRequestError,
  ConflictError,
  RateLimitError,
  ServerError,
  APITimeoutError,
  APIConnectionError,
  ConfigurationError,
  DecodeError,
  WebhookVerificationError,
  ERROR_CLASSES: CLASSES,
  fromNative,
}
