// Side by side, in one run against one sandbox with limits off: this package (the Rust engine
// through napi) versus global fetch with hand-written token handling.
//   1. 10,000 small GETs with 100 in flight: calls per second.
//   2. An export of 1,000,000 records: records per second and peak memory (max RSS).
// Each measurement runs in a fresh process (so max RSS is that side's alone), `ROUNDS` times;
// the best round is reported. Run: benches/node/run.sh (builds the addon in release first).
const { spawn, execFileSync } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const CALLS = Number(process.env.BENCH_CALLS ?? 10_000)
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 100)

async function startSandbox() {
  const child = spawn(process.execPath, [path.join(__dirname, 'sandbox-server.js')], { stdio: ['pipe', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`the sandbox exited with ${code}`)))
  })
  return { child, ...JSON.parse(line) }
}

function measure(side, workload, sandbox) {
  const args = JSON.stringify({ baseUrl: sandbox.baseUrl, appKey: sandbox.appKey, calls: CALLS, inFlight: IN_FLIGHT })
  const out = execFileSync(process.execPath, [path.join(__dirname, 'variant.js'), side, workload, args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out)
}

async function main() {
  const sandbox = await startSandbox()
  const rows = []
  try {
    for (const workload of ['gets', 'export']) {
      for (const side of ['engine', 'fetch']) {
        let best = null
        for (let round = 0; round < ROUNDS; round++) {
          const r = measure(side, workload, sandbox)
          if (!best || r.perSecond > best.perSecond) best = { ...r, maxRssMb: Math.max(r.maxRssMb, best?.maxRssMb ?? 0) }
          else best.maxRssMb = Math.max(best.maxRssMb, r.maxRssMb)
        }
        rows.push(best)
      }
    }
  } finally {
    sandbox.child.stdin.end()
  }
  const name = { engine: 'servicetitan (Rust engine)', fetch: 'fetch + own token code' }
  const unit = { gets: 'calls/s', export: 'records/s' }
  console.log(`node ${process.version}, ${ROUNDS} rounds each, best shown (peak RSS: highest of the rounds)`)
  for (const r of rows) {
    console.log(
      `${r.workload.padEnd(7)} ${name[r.side].padEnd(28)} ${Math.round(r.perSecond).toLocaleString('en-US').padStart(10)} ${unit[r.workload].padEnd(9)}` +
        ` ${r.ops.toLocaleString('en-US').padStart(9)} in ${r.seconds.toFixed(2)} s   peak RSS ${r.maxRssMb.toFixed(0)} MB`,
    )
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
