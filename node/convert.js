'use strict'
// The caller's values on their way into the addon: JSON bodies, report parameters, sandbox
// options and query parameters. A value that JSON (or a query string) cannot carry as it is, a
// value that contains itself, or one nested deeper than MAX_DEPTH is refused with a
// ConfigurationError naming the argument and the path to the bad part (`json.items[3].price`),
// before anything is sent. Messages describe a bad value by its type only, never by its
// content: it may be a secret.

const { types } = require('node:util')
const { ConfigurationError } = require('./errors.js')

/** Arrays and objects may nest this deep (the addon checks the same limit). */
const MAX_DEPTH = 128

/** Returned for an object member that JSON leaves out (`undefined`). */
const OMIT = Symbol('omit')

const wellFormed =
  typeof String.prototype.isWellFormed === 'function'
    ? (s) => s.isWellFormed()
    : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)

const LONE_SURROGATE = 'a string with a lone surrogate (not valid Unicode) cannot be sent'

function article(word) {
  return /^[aeiou]/i.test(word) ? `an ${word}` : `a ${word}`
}

/** What `value` is, without what it holds: `a number`, `a Buffer`, `an array`, `null`. */
function describe(value) {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'undefined':
      return 'undefined'
    case 'number':
      return Number.isFinite(value) ? 'a number' : String(value)
    case 'bigint':
      return 'a BigInt'
    case 'object':
      break
    default:
      return article(typeof value)
  }
  if (Array.isArray(value)) return 'an array'
  if (Buffer.isBuffer(value)) return 'a Buffer'
  const kind = specialKind(value)
  if (kind !== null) return article(kind)
  if (types.isDate(value)) return 'a Date'
  return 'an object'
}

/** Built-in objects JSON would turn into `{}` (or a key soup), with how to convert them. */
function specialKind(value) {
  if (types.isMap(value)) return 'Map'
  if (types.isSet(value)) return 'Set'
  if (types.isWeakMap(value)) return 'WeakMap'
  if (types.isWeakSet(value)) return 'WeakSet'
  if (types.isPromise(value)) return 'Promise'
  if (types.isRegExp(value)) return 'RegExp'
  if (types.isNativeError(value)) return 'Error'
  if (types.isAnyArrayBuffer(value)) return 'ArrayBuffer'
  if (types.isArrayBufferView(value)) return Buffer.isBuffer(value) ? 'Buffer' : 'typed array'
  if (types.isGeneratorObject(value)) return 'generator'
  if (types.isSymbolObject(value)) return 'Symbol object'
  return null
}

const HINTS = {
  Map: ' (convert it first, e.g. with Object.fromEntries)',
  Set: ' (convert it first, e.g. with Array.from)',
  'typed array': ' (convert it first, e.g. with Array.from)',
  bigint: ' (convert it first, with Number() or String())',
  'undefined in an array': ' (JSON would turn it into null: give null, or leave the item out)',
}

function errorText(err) {
  try {
    const text = err instanceof Error ? err.message : String(err)
    return text.length > 300 ? `${text.slice(0, 300)}…` : text
  } catch {
    return 'an error that cannot be printed'
  }
}

function step(key) {
  if (typeof key === 'number') return `[${key}]`
  if (/^[A-Za-z_$][\w$]{0,63}$/.test(key)) return `.${key}`
  return `[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`
}

/**
 * `argument` then `.key` or `[index]` per step; odd or long keys quoted and cut, and the
 * middle of a very long path left out (`json[0][0]…[0][0]`).
 */
function pathText(argument, keys) {
  const steps = keys.map(step)
  const full = argument + steps.join('')
  if (full.length <= 240) return full
  let head = argument
  let i = 0
  while (i < steps.length && head.length + steps[i].length <= 120) head += steps[i++]
  let tail = ''
  let j = steps.length
  while (j > i && tail.length + steps[j - 1].length <= 120) tail = steps[--j] + tail
  return `${head}…${tail}`
}

/** Walks one value, building the copy that is sent; `keys` is the path to where it is. */
class Walk {
  constructor(argument, mapKey) {
    this.argument = argument
    this.mapKey = mapKey
    this.keys = []
    /** Containers being walked → how deep each is: a value met again among them is a cycle. */
    this.open = new Map()
  }

  fail(what, cause) {
    const message = `${pathText(this.argument, this.keys)}: ${what}`
    throw new ConfigurationError(message, { argument: this.argument, cause })
  }

  /** `read()`, a getter or a Proxy trap of the caller's may throw: name where it did. */
  read(read) {
    try {
      return read()
    } catch (err) {
      if (err instanceof ConfigurationError) throw err
      return this.fail(`reading it threw: ${errorText(err)}`, err)
    }
  }

  /** The JSON-safe copy of `value`, found under `key` (`''` at the top), or OMIT. */
  value(value, key) {
    if ((typeof value === 'object' && value !== null) || typeof value === 'function') {
      if (types.isDate(value) && Number.isNaN(Date.prototype.getTime.call(value))) {
        this.fail('an invalid Date cannot be sent as JSON')
      }
      const toJSON = this.read(() => value.toJSON)
      if (typeof toJSON === 'function') {
        value = this.read(() => toJSON.call(value, String(key)))
      }
      if (types.isBoxedPrimitive(value) && !types.isSymbolObject(value)) value = this.read(() => value.valueOf())
    }
    switch (typeof value) {
      case 'string':
        if (!wellFormed(value)) this.fail(`${LONE_SURROGATE} as JSON`)
        return value
      case 'number':
        if (!Number.isFinite(value)) this.fail(`${value} cannot be sent as JSON`)
        return value
      case 'boolean':
        return value
      case 'undefined':
        return OMIT
      case 'bigint':
        return this.fail(`a BigInt cannot be sent as JSON${HINTS.bigint}`)
      case 'symbol':
      case 'function':
        return this.fail(`${article(typeof value)} cannot be sent as JSON`)
    }
    if (value === null) return null
    return this.container(value)
  }

  container(value) {
    const seen = this.open.get(value)
    if (seen !== undefined) {
      const target = pathText(this.argument, this.keys.slice(0, seen))
      this.fail(`a value that contains itself cannot be sent as JSON (it is ${target} again)`)
    }
    if (this.keys.length >= MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`)
    const kind = specialKind(value)
    if (kind !== null) this.fail(`${article(kind)} cannot be sent as JSON${HINTS[kind] ?? ''}`)
    this.open.set(value, this.keys.length)
    let out
    if (this.read(() => Array.isArray(value))) {
      out = []
      const length = this.read(() => value.length)
      for (let i = 0; i < length; i++) {
        this.keys.push(i)
        const item = this.value(
          this.read(() => value[i]),
          i,
        )
        if (item === OMIT) this.fail(`undefined cannot be sent as JSON in an array${HINTS['undefined in an array']}`)
        out.push(item)
        this.keys.pop()
      }
    } else {
      // No prototype: a member named `__proto__` stays a member.
      out = Object.create(null)
      for (const key of this.read(() => Object.keys(value))) {
        this.keys.push(key)
        if (!wellFormed(key)) this.fail(`${LONE_SURROGATE} as a JSON key`)
        const member = this.value(
          this.read(() => value[key]),
          key,
        )
        if (member !== OMIT) out[this.mapKey === undefined ? key : this.mapKey(key)] = member
        this.keys.pop()
      }
    }
    this.open.delete(value)
    return out
  }
}

/**
 * `value` as JSON text, with `JSON.stringify`'s rules where they are faithful (`toJSON`, Dates
 * as ISO 8601, `undefined` members left out, boxed primitives unwrapped) and a
 * ConfigurationError where they are not (cycles, BigInt, NaN and ±Infinity, functions,
 * symbols, `undefined` in arrays, Maps and Sets, invalid Dates, lone surrogates) or nesting
 * is deeper than MAX_DEPTH. `mapKey` renames object keys (option objects only).
 */
function jsonText(value, argument, mapKey) {
  const copy = new Walk(argument, mapKey).value(value, '')
  return copy === OMIT ? undefined : JSON.stringify(copy)
}

/** An object of name → value: a plain object or a class instance, not an array, a Date or a Map. */
function isRecord(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && specialKind(value) === null && !types.isDate(value)
}

/** One query value as the API reads it: dates in ISO 8601, the rest as text. */
function queryScalar(walk, value) {
  switch (typeof value) {
    case 'string':
      if (!wellFormed(value)) walk.fail(`${LONE_SURROGATE} in a query`)
      return value
    case 'number':
      if (!Number.isFinite(value)) walk.fail(`${value} cannot be sent in a query`)
      return String(value)
    case 'boolean':
    case 'bigint':
      return String(value)
  }
  if (types.isDate(value)) {
    if (Number.isNaN(Date.prototype.getTime.call(value))) walk.fail('an invalid Date cannot be sent in a query')
    return Date.prototype.toISOString.call(value)
  }
  return walk.fail(`expected a string, number, boolean, BigInt or Date, got ${describe(value)}`)
}

/**
 * `{ name: value }` as the flat `[name, value, …]` list the addon takes: arrays
 * comma-separated, `null` and `undefined` left out; anything else a ConfigurationError.
 */
function flatQuery(params, argument = 'params') {
  const flat = []
  if (params == null) return flat
  const walk = new Walk(argument)
  if (!isRecord(params)) walk.fail(`expected an object of name → value, got ${describe(params)}`)
  for (const name of walk.read(() => Object.keys(params))) {
    walk.keys.push(name)
    if (!wellFormed(name)) walk.fail(`${LONE_SURROGATE} as a query name`)
    const value = walk.read(() => params[name])
    if (value === undefined || value === null) {
      walk.keys.pop()
      continue
    }
    if (Array.isArray(value)) {
      const items = []
      const length = walk.read(() => value.length)
      for (let i = 0; i < length; i++) {
        walk.keys.push(i)
        items.push(queryScalar(walk, walk.read(() => value[i])))
        walk.keys.pop()
      }
      flat.push(name, items.join(','))
    } else {
      flat.push(name, queryScalar(walk, value))
    }
    walk.keys.pop()
  }
  return flat
}

module.exports = { MAX_DEPTH, jsonText, flatQuery, describe, isRecord, errorText }
