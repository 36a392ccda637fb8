'use strict'
// Nothing of ours keeps the event loop alive: scripts end by themselves when their work is
// done, with no process.exit().

const test = require('node:test')
const assert = require('node:assert/strict')
const { runFixture } = require('./helpers.js')

for (const mode of ['open', 'close']) {
  test(`a script with a sandbox (${mode === 'open' ? 'never closed' : 'closed'}) exits by itself`, async () => {
    const r = await runFixture('exit-sandbox.js', { args: [mode], timeoutMs: 15_000 })
    assert.equal(r.timedOut, false, 'the script was still running after 15 s')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), '200')
  })
}

test('a script with an open client, a broken-off export and a logger exits by itself', async () => {
  const r = await runFixture('exit-client.js', { timeoutMs: 15_000 })
  assert.equal(r.timedOut, false, 'the script was still running after 15 s')
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), '3')
})
