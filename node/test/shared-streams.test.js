'use strict'
// One record stream read by several consumers at once: every record goes to exactly one of
// them, and continueFrom never passes a record not handed out.

const test = require('node:test')
const assert = require('node:assert/strict')
const { setImmediate: tick } = require('node:timers/promises')
const st = require('servicetitan')
const { clientOptions, credentials } = require('./helpers.js')

const { Client, Sandbox } = st

const RECORDS = 20_000
const PAGE = 500

let sandbox
let tenant
let allIds

test.before(async () => {
  sandbox = new Sandbox({ rateLimit: false, records: RECORDS, exportPageSize: PAGE })
  tenant = new Client(clientOptions(sandbox, { rateLimit: false })).tenant(1001, credentials(sandbox, 1001))
  allIds = new Set()
  for await (const r of tenant.export('crm/customers')) allIds.add(r.id)
  assert.equal(allIds.size, RECORDS)
})

test.after(() => sandbox.close())

/** One consumer: `for await` over the shared iterator, yielding to the others between records. */
async function consume(iterator) {
  const ids = []
  for await (const record of iterator) {
    ids.push(record.id)
    await tick()
  }
  return ids
}

function assertExactlyOnce(perConsumer, expected) {
  const counts = perConsumer.map((ids) => ids.length)
  const received = perConsumer.flat()
  assert.equal(received.length, expected.size, `${perConsumer.length} consumers received ${counts}`)
  assert.equal(new Set(received).size, received.length, `a record arrived twice: ${counts}`)
  assert.ok(received.every((id) => expected.has(id)))
  assert.ok(counts.every((n) => n > 0), `a consumer got nothing: ${counts}`)
}

for (const consumers of [2, 8]) {
  test(`an export shared by ${consumers} consumers hands out every record once`, async () => {
    const feed = tenant.export('crm/customers')
    const perConsumer = await Promise.all(Array.from({ length: consumers }, () => consume(feed)))
    assertExactlyOnce(perConsumer, allIds)
    assert.equal(typeof feed.continueFrom, 'string')
    const resumed = await consume(tenant.export('crm/customers', { since: feed.continueFrom }))
    assert.equal(resumed.length, 0, `${resumed.length} records after the final checkpoint`)
  })

  test(`a list shared by ${consumers} consumers hands out every record once`, async () => {
    const list = tenant.paginate('crm/customers', { params: { active: 'Any' }, pageSize: 250 })
    const perConsumer = await Promise.all(Array.from({ length: consumers }, () => consume(list)))
    assertExactlyOnce(perConsumer, allIds)
    assert.equal(list.continueFrom, null)
  })
}

for (const stop of [7_777, 8_000, 8_001]) {
  test(`stopped after ${stop} records, the checkpoint passes no record not handed out`, async () => {
    // Eight consumers stop together, as a crashed sync would.
    const feed = tenant.export('crm/customers')
    const handed = []
    const consumer = async () => {
      while (handed.length < stop) {
        const { value, done } = await feed.next()
        assert.ok(!done)
        handed.push(value.id)
        await tick()
      }
    }
    await Promise.all(Array.from({ length: 8 }, consumer))
    // A consumer that was waiting for a page when the count was reached took one more.
    assert.ok(handed.length >= stop && handed.length < stop + 8, `${handed.length}`)
    const checkpoint = feed.continueFrom
    assert.equal(typeof checkpoint, 'string')
    const resumed = new Set(await consume(tenant.export('crm/customers', { since: checkpoint })))
    const handedSet = new Set(handed)
    const lost = [...allIds].filter((id) => !handedSet.has(id) && !resumed.has(id))
    assert.equal(lost.length, 0, `${lost.length} records neither handed out nor after the checkpoint`)
    const doubled = handed.filter((id) => resumed.has(id)).length
    assert.equal(doubled, handed.length % PAGE, 'only the page being handed out repeats')
  })
}

test('a failed page goes to one consumer and ends the stream for all', async () => {
  const limited = new Client(clientOptions(sandbox)).tenant(1004, credentials(sandbox, 1004)) // crm only
  const jobs = limited.paginate('jpm/jobs')
  const outcomes = await Promise.all(
    Array.from({ length: 4 }, () => consume(jobs).catch((err) => err)),
  )
  const errors = outcomes.filter((o) => o instanceof Error)
  assert.equal(errors.length, 1, String(outcomes))
  assert.ok(errors[0] instanceof st.PermissionDeniedError)
  assert.deepEqual(outcomes.filter((o) => !(o instanceof Error)), [[], [], []])
})

test('break ends a shared stream for every consumer and keeps the checkpoint', async () => {
  const feed = tenant.export('crm/customers')
  const other = consume(feed)
  let n = 0
  for await (const _ of feed) {
    if (++n === 1200) break
  }
  const otherIds = await other
  const handed = n + otherIds.length
  assert.ok(handed < RECORDS, `${handed} records after break`)
  // The checkpoint is that of the last page handed out whole.
  const resumed = await consume(tenant.export('crm/customers', { since: feed.continueFrom }))
  assert.equal(resumed.length, RECORDS - Math.floor(handed / PAGE) * PAGE)
})
