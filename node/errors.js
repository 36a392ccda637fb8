'use strict'
// The error taxonomy (the README's error table) as Error subclasses, so that callers can use `instanceof`
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
class RedirectError extends ServiceTitanError {}
class InternalError extends ServiceTitanError {}
/** A webhook delivery failed verification (no signature, a wrong one, or a body that is not an event). */
class WebhookVerificationError extends ServiceTitanError {}

/** code -> class, in the order of the README's error table. */
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
  redirect: RedirectError,
  internal: InternalError,
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

/** napi's statuses for an argument it could not convert into the Rust type asked for. */
const CONVERSION_STATUSES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
])

const RUST_TYPES = {
  String: 'a string',
  bool: 'a boolean',
  f64: 'a number',
  u32: 'a whole number from 0 to 4294967295',
  i32: 'an integer',
  i64: 'an integer',
}

/**
 * napi's own conversion error, which quotes the value it could not convert: the value may be
 * a secret, so only the Rust type and the field (`on NativeClientOptions.appKey`) are kept.
 */
function conversionError(err) {
  const text = err.message
  const at = text.lastIndexOf(' into rust type `')
  const tail = at === -1 ? '' : text.slice(at)
  const match = /^ into rust type `([^`]*)`(?: on \w+\.(\w+))?/.exec(tail)
  const expected = (match && RUST_TYPES[match[1]]) ?? 'a value of another type'
  const argument = match?.[2] ?? null
  return new ConfigurationError(`invalid ${argument ?? 'argument'}: expected ${expected}`, { argument })
}

/**
 * The public error for an error thrown by the addon: ours carry their fields as JSON; napi's
 * conversion errors become a ConfigurationError; anything else from the addon (a panic napi
 * caught itself, say) an InternalError.
 */
function fromNative(err) {
  // Ours already (a conversion error of the package's own, raised inside a callNative).
  if (err instanceof ServiceTitanError || !(err instanceof Error) || typeof err.message !== 'string') return err
  if (!err.message.startsWith(MARKER)) {
    if (CONVERSION_STATUSES.has(err.code)) return conversionError(err)
    return new InternalError(`internal error in servicetitan (a bug; the client stays usable): ${err.message}`, {
      cause: err,
    })
  }
  let fields
  try {
    fields = JSON.parse(err.message.slice(MARKER.length))
  } catch {
    return new InternalError('internal error in servicetitan (a bug; the client stays usable): an undecodable error', {})
  }
  const cls = CLASSES[fields.code] ?? ServiceTitanError
  const message = fields.code === 'configuration' ? camelizeNames(fields.message) : fields.message
  return new cls(message, fields)
}

/** Runs a call into the addon, its errors turned into the package's classes. */
function callNative(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
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
  RedirectError,
  InternalError,
  WebhookVerificationError,
  ERROR_CLASSES: CLASSES,
  fromNative,
  callNative,
}
