'use strict'
// Secrets in URLs (userinfo, query-string passwords, URLs that do not parse) never appear in an
// error's message, String() or util.inspect(), nor in the logger's lines: authUrl, apiUrl and
// redisUrl, refused at once or unreachable. Needs no Redis: nothing listens where they point.

const test = require('node:test')
const assert = require('node:assert/strict')
const util = require('node:util')
const { Client, Sandbox } = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

const SECRET = 'S3cr3tPw'

const BAD_BASE_URLS = [
  'http://user:S3cr3tPw@auth.example.com',
  'ftp://user:S3cr3tPw@auth.example.com',
  'https://user:S3cr3tPw@auth.example.com',
  'https://S3cr3tPw@auth.example.com',
  'http://user:S3cr3tPw@127.0.0.1:9',
  'https://auth.example.com/?token=S3cr3tPw',
  'https://auth.example.com/?Client_Secret=S3cr3tPw&x=1',
  'https://auth.example.com/#access_token=S3cr3tPw',
  'https://user:S3cr3tPw@auth.example.com:99999',
  'https://user:S3cr3tPw@bad host.example.com',
  'https://user:S3cr3tPw/x@auth.example.com',
  'user:S3cr3tPw@auth.example.com',
  'S3cr3tPw',
]

const BAD_REDIS_URLS = [
  'nope://:S3cr3tPw@cache.example.com',
  'redis://:S3cr3tPw@cache.example.com:99999',
  'rediss://user:S3cr3tPw@cache.example.com#insecure',
  'redis://:S3cr3tPw@0.0.0.0',
  'redis://:S3cr3tPw@cache.example.com/not-a-db',
  'redis+unix:///run/redis.sock?pass=S3cr3tPw&db=x',
  'unix:///run/redis.sock?PASS=S3cr3tPw&db=x',
  'redis:S3cr3tPw@cache.example.com',
  'S3cr3tPw',
]

function assertHidden(err, lines) {
  assert.ok(err instanceof Error, `not an Error: ${util.inspect(err)}`)
  for (const text of [err.message, String(err), err.stack ?? '', util.inspect(err), JSON.stringify(lines)]) {
    assert.ok(!text.includes(SECRET), `the secret shows in: ${text}`)
  }
}

/** What `new Client(options)` throws, with the logger's lines. */
function refused(options) {
  const lines = []
  try {
    new Client({ appKey: 'ak1.x', logger: (line) => lines.push(line), ...options })
  } catch (err) {
    return { err, lines }
  }
  assert.fail(`accepted: ${util.inspect(options)}`)
}

test('a bad authUrl or apiUrl is refused without its secret', () => {
  for (const url of BAD_BASE_URLS) {
    for (const argument of ['authUrl', 'apiUrl']) {
      const options = { authUrl: 'https://auth.example.com', apiUrl: 'https://api.example.com', [argument]: url }
      const { err, lines } = refused(options)
      assertHidden(err, lines)
      assert.match(err.message, argument === 'authUrl' ? /auth_url/ : /api_url/, err.message)
    }
  }
})

test('a bad redisUrl is refused without its secret', () => {
  for (const url of BAD_REDIS_URLS) {
    const { err, lines } = refused({ redisUrl: url })
    assertHidden(err, lines)
    assert.match(err.message, /redis_url/, err.message)
  }
})

test('an unreachable Redis is named without its secret, in errors and log lines', async (t) => {
  const sandbox = new Sandbox()
  t.after(() => sandbox.close())
  // Read by the engine when the client is built: calls give up on Redis after 0.3 s.
  const saved = process.env.ST_REDIS_WAIT_SECS
  process.env.ST_REDIS_WAIT_SECS = '0.3'
  t.after(() => {
    if (saved === undefined) delete process.env.ST_REDIS_WAIT_SECS
    else process.env.ST_REDIS_WAIT_SECS = saved
  })
  for (const [redisUrl, shown] of [
    ['redis://user:S3cr3tPw@127.0.0.1:1/0', 'redis://***:***@127.0.0.1:1/0'],
    ['redis+unix:///nonexistent/redis.sock?pass=S3cr3tPw', 'redis+unix:///nonexistent/redis.sock?pass=***'],
  ]) {
    const lines = []
    const client = new Client(clientOptions(sandbox, { redisUrl, logger: (line) => lines.push(line) }))
    assert.ok(!util.inspect(client).includes(SECRET))
    const tenant = client.tenant(sandbox.tenants[0].id, credentials(sandbox))
    const err = await tenant.get('crm/customers').then(
      () => assert.fail('the call went through without Redis'),
      (e) => e,
    )
    assert.equal(err.code, 'connection', err.message)
    assert.ok(err.message.includes(`Redis at ${shown}`), err.message)
    // Log lines arrive from the engine's threads; give the last ones a moment.
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.ok(lines.some((l) => l.message.includes('Redis failed; retrying')), JSON.stringify(lines))
    assertHidden(err, lines)
  }
})
