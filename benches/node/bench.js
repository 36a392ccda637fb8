// Side by side, in one run against one sandbox with limits off: this package (the Rust engine
// through napi) versus global fetch with hand-written token handling and JSON.parse.
//   1. 10,000 small GETs with 100 in flight: calls per second.
//   2. An export of 1,000,000 records: records per second, the client's own CPU time per
//      record, and peak memory (max RSS).
// The sandbox is the `servicetitan-sandbox` binary (release build) in a process of its own, so
// that a client's CPU time is its own. Each measurement runs in a fresh process (so max RSS and
// CPU are that side's alone: process.cpuUsage(), every thread), `ROUNDS` times; each column
// shows the best of the rounds. Run: benches/node/run.sh (builds the addon and the sandbox in
// release first).
const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const CALLS = Number(process.env.BENCH_CALLS ?? 10_000)
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 100)

function sandboxBinary() {
  if (process.env.SANDBOX_BIN) return process.env.SANDBOX_BIN
  const root = path.join(__dirname, '..', '..')
  const triple = process.env.CARGO_BUILD_TARGET ?? ''
  const candidates = [path.join(root, 'target', triple, 'release', 'servicetitan-sandbox'), path.join(root, 'target', 'release', 'servicetitan-sandbox')]
  const found = candidates.find((c) => fs.existsSync(c))
  if (!found) throw new Error('no release build of servicetitan-sandbox: cargo build --release -p servicetitan-sandbox (or SANDBOX_BIN)')
  return found
}

// `servicetitan-sandbox` prints its base URL, then the app key and the tenants' credentials.
async function startSandbox() {
  const records = String(process.env.BENCH_RECORDS ?? 1_000_000)
  const child = spawn(sandboxBinary(), ['--port', '0', '--records', records, '--no-rate-limit'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = []
  await new Promise((resolve, reject) => {
    const reader = readline.createInterface({ input: child.stdout })
    reader.on('line', (line) => {
      lines.push(line)
      if (lines.length === 4) resolve()
    })
    child.once('exit', (code) => reject(new Error(`the sandbox exited with ${code}`)))
  })
  const appKey = lines[2].split(': ')[1].split(',')[0]
  const [, tenant, ...fields] = lines[3].replace(':', '').split(/\s+/)
  const credentials = Object.fromEntries(fields.map((f) => f.split('=')))
  return { child, baseUrl: lines[0], appKey, tenantId: Number(tenant), clientId: credentials.client_id, clientSecret: credentials.client_secret }
}

function measure(side, workload, sandbox) {
  const { baseUrl, appKey, tenantId, clientId, clientSecret } = sandbox
  const args = JSON.stringify({ baseUrl, appKey, tenantId, clientId, clientSecret, calls: CALLS, inFlight: IN_FLIGHT })
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
          best = best
            ? {
                ...best,
                perSecond: Math.max(best.perSecond, r.perSecond),
                seconds: Math.min(best.seconds, r.seconds),
                cpuSeconds: Math.min(best.cpuSeconds, r.cpuSeconds),
                maxRssMb: Math.max(best.maxRssMb, r.maxRssMb),
              }
            : r
        }
        rows.push(best)
      }
    }
  } finally {
    sandbox.child.kill('SIGTERM')
  }
  const name = { engine: 'servicetitan (Rust engine)', fetch: 'fetch + JSON.parse' }
  const unit = { gets: 'calls/s', export: 'records/s' }
  const cpu = (r) => (r.cpuSeconds / r.ops) * 1e6
  console.log(`node ${process.version}, ${ROUNDS} rounds each; each column the best of the rounds (peak RSS: the highest)`)
  console.log('client CPU: the client process\'s own CPU time (every thread) per call or record')
  for (const r of rows) {
    const other = rows.find((o) => o.workload === r.workload && o.side !== r.side)
    console.log(
      `${r.workload.padEnd(7)} ${name[r.side].padEnd(28)} ${Math.round(r.perSecond).toLocaleString('en-US').padStart(10)} ${unit[r.workload].padEnd(9)}` +
        ` ${r.ops.toLocaleString('en-US').padStart(9)} in ${r.seconds.toFixed(2)} s   client CPU ${cpu(r).toFixed(3).padStart(7)} µs` +
        ` (the other side: ${(cpu(other) / cpu(r)).toFixed(2)}×)   peak RSS ${r.maxRssMb.toFixed(0)} MB`,
    )
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
