'use strict'
// The error taxonomy: one class per code, all under ServiceTitanError, with the documented fields.

const test = require('node:test')
const assert = require('node:assert/strict')
const st = require('servicetitan')
const native = require('../native.js')

const TABLE = [
  ['authentication', 'AuthenticationError'],
  ['permission_denied', 'PermissionDeniedError'],
  ['not_found', 'NotFoundError'],
  ['bad_request', 'BadRequestError'],
  ['conflict', 'ConflictError'],
  ['rate_limited', 'RateLimitError'],
  ['server', 'ServerError'],
  ['timeout', 'APITimeoutError'],
  ['connection', 'APIConnectionError'],
  ['configuration', 'ConfigurationError'],
  ['decode', 'DecodeError'],
  ['redirect', 'RedirectError'],
  ['internal', 'InternalError'],
  ['webhook', 'WebhookVerificationError'],
]

test('every code of the engine has its class under ServiceTitanError', () => {
  assert.deepEqual(TABLE.map(([code]) => code), native.errorCodes())
  assert.deepEqual(Object.keys(require('../errors.js').ERROR_CLASSES), native.errorCodes())
  for (const [code, name] of TABLE) {
    const cls = st[name]
    assert.equal(typeof cls, 'function', name)
    assert.equal(cls.code, code)
    const err = new cls('boom', { status: 418, title: 't', traceId: 'tr', errors: { f: ['m'] }, method: 'GET', url: 'u' })
    assert.ok(err instanceof st.ServiceTitanError)
    assert.ok(err instanceof Error)
    assert.equal(err.name, name)
    assert.equal(err.code, code)
    assert.deepEqual(
      [err.status, err.title, err.traceId, err.errors, err.method, err.url],
      [418, 't', 'tr', { f: ['m'] }, 'GET', 'u'],
    )
  }
})

test('fields a failure did not have are null, errors an empty object', () => {
  const err = new st.NotFoundError('gone')
  assert.deepEqual(
    [err.status, err.title, err.traceId, err.errors, err.method, err.url],
    [null, null, null, {}, null, null],
  )
  assert.equal(err.message, 'gone')
})
