'use strict'
// Both module systems load the package by its name.

const test = require('node:test')
const assert = require('node:assert/strict')
const { runFixture } = require('./helpers.js')

test("require('servicetitan') gives the public classes", async () => {
  const r = await runFixture('cjs.js')
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), {
    Client: 'function',
    Sandbox: 'function',
    ServiceTitanError: 'function',
    NotFoundError: 'function',
    ConfigurationError: 'function',
  })
})

test("import { Client } from 'servicetitan' gives the same classes as require", async () => {
  const r = await runFixture('esm.mjs')
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout), {
    Client: 'function',
    Sandbox: 'function',
    ServiceTitanError: 'function',
    NotFoundError: 'function',
    ConfigurationError: 'function',
    sameAsRequire: true,
    sameAsDefault: true,
  })
})
