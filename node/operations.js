'use strict'
// The API by name: `tenant.crm.customers.getList({ pageSize: 5 }, { signal })`. Each module's
// table (node/api/<module>.js, generated from the specs) is loaded on first use; calls go to the
// engine by name, which checks their parameters before anything is sent. Only the shapes of the
// results are made here: a list call is awaitable (one page) and async-iterable (every record),
// a page iterates on through the pages after it, an export is the engine's feed.

const MODULES = require('./api/index.js')

/** Sends a call: `tenant[SEND](name, params, body, signal, binary)` → Promise of the answer. */
const SEND = Symbol('servicetitan.send')
/** Streams a list's or an export's records: `tenant[RECORDS](name, params, signal)` → feed. */
const RECORDS = Symbol('servicetitan.records')

/** The parameters without `body`, and the body. */
function split(params) {
  if (params == null || typeof params !== 'object' || Array.isArray(params)) return [params, undefined]
  if (!Object.prototype.hasOwnProperty.call(params, 'body')) return [params, undefined]
  const { body, ...rest } = params
  return [rest, body]
}

function signalOf(options) {
  return options == null ? undefined : options.signal
}

/**
 * One page of a list. `for await` over it yields its records, then every record of the pages
 * after it through the engine's paginator (the next page fetched while this one is consumed).
 */
class Page {
  #tenant
  #name
  #params
  #signal

  constructor(tenant, name, params, signal, answer) {
    const body = answer !== null && typeof answer === 'object' ? answer : {}
    this.#tenant = tenant
    this.#name = name
    this.#params = params ?? {}
    this.#signal = signal
    /** The records of this page. */
    this.data = Array.isArray(body.data) ? body.data : []
    this.hasMore = body.hasMore === true
    /** With `includeTotal: true`. */
    this.totalCount = body.totalCount ?? null
    this.page = body.page || this.#params.page || 1
    this.pageSize = body.pageSize || this.#params.pageSize || this.data.length || 50
  }

  async *[Symbol.asyncIterator]() {
    yield* this.data
    if (!(this.hasMore && this.data.length > 0)) return
    const rest = { ...this.#params, page: this.page + 1, pageSize: this.pageSize }
    yield* this.#tenant[RECORDS](this.#name, rest, this.#signal)
  }
}

/**
 * A list call: `await` it for one page, or `for await` it directly for every record from its
 * `page` (default 1) on. The page is fetched only when awaited.
 */
class ListCall {
  #tenant
  #name
  #params
  #signal
  #page = null

  constructor(tenant, name, params, signal) {
    this.#tenant = tenant
    this.#name = name
    this.#params = params
    this.#signal = signal
  }

  #fetch() {
    if (this.#page === null) {
      this.#page = this.#tenant[SEND](this.#name, this.#params, undefined, this.#signal, false).then(
        (answer) => new Page(this.#tenant, this.#name, this.#params, this.#signal, answer),
      )
    }
    return this.#page
  }

  then(onFulfilled, onRejected) {
    return this.#fetch().then(onFulfilled, onRejected)
  }

  catch(onRejected) {
    return this.#fetch().catch(onRejected)
  }

  finally(onFinally) {
    return this.#fetch().finally(onFinally)
  }

  [Symbol.asyncIterator]() {
    return this.#tenant[RECORDS](this.#name, this.#params, this.#signal)[Symbol.asyncIterator]()
  }
}

/** One operation of a tenant, as a function of (params, { signal }). */
function operation(tenant, name, kind) {
  switch (kind) {
    case 'list':
      return (params, options) => new ListCall(tenant, name, params, signalOf(options))
    case 'export':
      return (params, options) => tenant[RECORDS](name, params, signalOf(options))
    case 'redirect':
      // The engine answers with the URL the redirect points to (it never follows redirects).
      return (params, options) => {
        const [rest, body] = split(params)
        return tenant[SEND](name, rest, body, signalOf(options), true).then((buffer) => buffer.toString('utf8'))
      }
    default: {
      const binary = kind === 'binary'
      return (params, options) => {
        const [rest, body] = split(params)
        return tenant[SEND](name, rest, body, signalOf(options), binary)
      }
    }
  }
}

/** `tenant.<module>`: an object of resources (each an object of operations), built on first use. */
function buildModule(tenant, module) {
  const table = require(`./api/${module}.js`)
  const out = {}
  for (const [resource, actions] of Object.entries(table)) {
    const target = resource === '' ? out : (out[resource] = {})
    const prefix = resource === '' ? module : `${module}.${resource}`
    for (const [action, kind] of Object.entries(actions)) {
      target[action] = operation(tenant, `${prefix}.${action}`, kind)
    }
    Object.freeze(target)
  }
  return Object.freeze(out)
}

/** Defines a getter per API module on `Tenant.prototype`; each builds its module once per tenant. */
function installModules(Tenant) {
  const built = new WeakMap()
  for (const module of MODULES) {
    Object.defineProperty(Tenant.prototype, module, {
      configurable: true,
      enumerable: false,
      get() {
        let modules = built.get(this)
        if (modules === undefined) built.set(this, (modules = new Map()))
        let value = modules.get(module)
        if (value === undefined) modules.set(module, (value = buildModule(this, module)))
        return value
      },
    })
  }
}

module.exports = { SEND, RECORDS, ListCall, Page, installModules, MODULES }
