'use strict'
// The options and arguments of the public API, checked and flattened into what the addon
// takes (see bindings/node/src). Everything wrong is a ConfigurationError naming the option;
// a wrong value is described by its type only, never echoed: options carry secrets.

const { ConfigurationError } = require('./errors.js')
const { describe, errorText, flatQuery, isRecord, jsonText } = require('./convert.js')

function refuse(argument, expected, value, hint = '') {
  throw new ConfigurationError(`invalid ${argument}: expected ${expected}, got ${describe(value)}${hint}`, { argument })
}

/** The options object of `what` (absent: none); anything but an object is refused. */
function optionsObject(options, argument = 'options') {
  if (options == null) return {}
  if (!isRecord(options)) refuse(argument, 'an object', options)
  return options
}

/**
 * A string option, or undefined when absent. A secret read with `readFileSync(path)` (no
 * encoding) is a Buffer: say how to read it as text rather than take its bytes.
 */
function optionalString(value, argument) {
  if (value == null) return undefined
  if (typeof value !== 'string') {
    const hint = Buffer.isBuffer(value) ? " (read the file as text: readFileSync(path, 'utf8').trim())" : ''
    refuse(argument, 'a string', value, hint)
  }
  return value
}

function requiredString(value, argument) {
  if (typeof value !== 'string') refuse(argument, 'a string', value)
  return value
}

/** A whole number from `min` to 2^32 - 1 (what the addon's u32 takes), or absent. */
function wholeNumber(value, argument, min = 0) {
  if (value == null) return
  if (!Number.isInteger(value) || value < min || value > 0xffffffff) {
    const got = typeof value === 'number' ? String(value) : describe(value)
    throw new ConfigurationError(`invalid ${argument}: expected a whole number from ${min} to 4294967295, got ${got}`, {
      argument,
    })
  }
}

/** A duration in milliseconds, or absent; napi would take a string or a negative number as is. */
function milliseconds(value, argument) {
  if (value == null) return undefined
  if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
    const got = typeof value === 'number' ? String(value) : describe(value)
    throw new ConfigurationError(`invalid ${argument}: expected a non-negative number of milliseconds, got ${got}`, {
      argument,
    })
  }
  return value
}

function optionalBoolean(value, argument) {
  if (value == null) return undefined
  if (typeof value !== 'boolean') refuse(argument, 'true or false', value)
  return value
}

/** An id the API takes: a safe integer (napi would truncate 1.5 and turn NaN into 0). */
function integerId(value, argument) {
  if (!Number.isSafeInteger(value)) {
    const got = typeof value === 'number' ? String(value) : describe(value)
    throw new ConfigurationError(`invalid ${argument}: expected an integer, got ${got}`, { argument })
  }
  return value
}

/** `false`, absent, or an object: the shape of `rateLimit` and its kin. */
function limitObject(value, argument) {
  if (value == null || value === false) return value
  return optionsObject(value, argument)
}

/** Options in milliseconds, as the addon takes them (see NativeClientOptions). */
function nativeClientOptions(options) {
  options = optionsObject(options)
  const o = {
    appKey: optionalString(options.appKey, 'appKey'),
    environment: optionalString(options.environment, 'environment'),
    authUrl: optionalString(options.authUrl, 'authUrl'),
    apiUrl: optionalString(options.apiUrl, 'apiUrl'),
    maxAttempts: options.maxAttempts,
    timeoutMs: milliseconds(options.timeoutMs, 'timeoutMs'),
    connectTimeoutMs: milliseconds(options.connectTimeoutMs, 'connectTimeoutMs'),
    attemptTimeoutMs: milliseconds(options.attemptTimeoutMs, 'attemptTimeoutMs'),
    maxRetryAfterMs: milliseconds(options.maxRetryAfterMs, 'maxRetryAfterMs'),
    redisUrl: optionalString(options.redisUrl, 'redisUrl'),
    redisKeyPrefix: optionalString(options.redisKeyPrefix, 'redisKeyPrefix'),
    redisTokenKey: optionalString(options.redisTokenKey, 'redisTokenKey'),
    redisFallbackShare: options.redisFallbackShare,
  }
  const share = o.redisFallbackShare
  if (share != null && !(typeof share === 'number' && Number.isFinite(share))) {
    refuse('redisFallbackShare', 'a number', share)
  }
  // Each half of a pair on its own: the engine takes a missing one from its environment
  // variable, then its default.
  const limit = limitObject(options.rateLimit, 'rateLimit')
  if (limit === false) {
    o.rateLimitCalls = 0
  } else if (limit != null) {
    o.rateLimitCalls = limit.calls ?? undefined
    o.rateLimitPeriodMs = milliseconds(limit.periodMs, 'rateLimit.periodMs')
    o.rateLimitMarginMs = milliseconds(limit.marginMs, 'rateLimit.marginMs')
    if (limit.marginAdaptive != null) {
      if (typeof limit.marginAdaptive !== 'boolean') refuse('rateLimit.marginAdaptive', 'a boolean', limit.marginAdaptive)
      o.rateLimitMarginAdaptive = limit.marginAdaptive
    }
  }
  const report = limitObject(options.reportRateLimit, 'reportRateLimit')
  if (report === false) {
    o.reportRateLimitCalls = 0
  } else if (report != null) {
    o.reportRateLimitCalls = report.calls ?? undefined
    o.reportRateLimitPeriodMs = milliseconds(report.periodMs, 'reportRateLimit.periodMs')
  }
  if (options.backoff != null) {
    const backoff = optionsObject(options.backoff, 'backoff')
    o.backoffBaseMs = milliseconds(backoff.baseMs, 'backoff.baseMs')
    o.backoffMaxMs = milliseconds(backoff.maxMs, 'backoff.maxMs')
  }
  if (options.caCertificates != null) {
    const list = Array.isArray(options.caCertificates) ? options.caCertificates : [options.caCertificates]
    o.caCertificates = list.map((pem, i) => {
      if (typeof pem === 'string') return pem
      if (Buffer.isBuffer(pem)) return pem.toString('utf8')
      return refuse(`caCertificates[${i}]`, 'a PEM string or Buffer', pem)
    })
  }
  // napi would wrap a negative or fractional number into a huge u32 (rateLimit.calls: -1 meant
  // no limit at all), so numbers are checked here, under the names the caller used.
  wholeNumber(o.maxAttempts, 'maxAttempts')
  wholeNumber(o.rateLimitCalls, 'rateLimit.calls')
  wholeNumber(o.reportRateLimitCalls, 'reportRateLimit.calls')
  return o
}

/**
 * The `logger` option, made safe to call from the addon: a callback that throws (or returns
 * a promise that rejects) would otherwise end the process as an uncaught exception. Its first
 * failure is reported once, as a process warning; logging goes on.
 */
function loggerCallback(logger) {
  if (logger == null) return undefined
  if (typeof logger !== 'function') refuse('logger', 'a function (record) => void', logger)
  let reported = false
  const report = (err) => {
    if (reported) return
    reported = true
    process.emitWarning(`the servicetitan logger callback threw (its later failures are not reported): ${errorText(err)}`, {
      code: 'SERVICETITAN_LOGGER_FAILED',
    })
  }
  return (record) => {
    try {
      const result = logger(record)
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        result.then(undefined, report)
      }
    } catch (err) {
      report(err)
    }
  }
}

/** One call's arguments as the addon's `request` takes them. */
function requestOptions(path, options) {
  requiredString(path, 'path')
  options = optionsObject(options)
  return {
    query: flatQuery(options.params),
    json: jsonText(options.json, 'json'),
    safeToRetry: optionalBoolean(options.safeToRetry, 'safeToRetry'),
    timeoutMs: milliseconds(options.timeoutMs, 'timeoutMs'),
  }
}

/** A report's parameters as JSON text of an object of name → value, or undefined. */
function reportParameters(parameters) {
  if (parameters == null) return undefined
  if (!isRecord(parameters)) refuse('parameters', 'an object of name → value', parameters)
  return jsonText(parameters, 'parameters')
}

function snakeCase(key) {
  return key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
}

/** `rateLimit: false` is shorthand for a limit that is switched off. */
function limitOption(limit) {
  return limit === false ? { enabled: false } : limit
}

/** Sandbox options as the JSON text of a `SandboxConfig` (snake_case keys). */
function sandboxConfig(options) {
  options = optionsObject(options)
  const config = { ...options, rateLimit: limitOption(options.rateLimit), reportLimit: limitOption(options.reportLimit) }
  return jsonText(config, 'options', snakeCase)
}

/** A sandbox fault as the JSON text of a `Fault`. */
function sandboxFault(fault) {
  if (!isRecord(fault)) refuse('fault', 'an object', fault)
  return jsonText(fault, 'fault', snakeCase)
}

module.exports = {
  nativeClientOptions,
  loggerCallback,
  optionsObject,
  optionalString,
  requiredString,
  wholeNumber,
  integerId,
  requestOptions,
  reportParameters,
  sandboxConfig,
  sandboxFault,
}
