'use strict'
// A logger callback that throws (or rejects) must not end the process: the failure is
// reported once, as a process warning, and logging goes on.

const test = require('node:test')
const assert = require('node:assert/strict')
const { runFixture } = require('./helpers.js')

for (const [mode, message] of [
  ['throw', 'logger threw on purpose'],
  ['reject', 'logger rejected on purpose'],
]) {
  test(`a logger that ${mode}s is reported once and the script carries on`, async () => {
    const r = await runFixture('logger-throws.js', { args: [mode], timeoutMs: 20_000 })
    assert.equal(r.timedOut, false)
    assert.equal(r.code, 0, r.stderr)
    const called = Number(/logger called (\d+) times/.exec(r.stdout)?.[1])
    assert.ok(called >= 3, `the logger kept receiving lines: ${r.stdout}`)
    assert.equal(r.stderr.split(message).length - 1, 1, `reported once: ${r.stderr}`)
    assert.match(r.stderr, /the servicetitan logger callback threw/)
  })
}
