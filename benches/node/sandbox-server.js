// The sandbox the benchmarks call, in a process of its own so that each side's memory and CPU
// are its own: limits off, a million customers (generated on demand). Prints its base URL.
const { Sandbox } = require('../../node')

const sandbox = new Sandbox({
  rateLimit: false,
  reportLimit: false,
  records: Number(process.env.BENCH_RECORDS ?? 1_000_000),
})
console.log(JSON.stringify({ baseUrl: sandbox.baseUrl, appKey: sandbox.appKey }))
// Runs until the parent closes our stdin.
process.stdin.resume()
process.stdin.on('end', () => sandbox.close())
