#!/usr/bin/env node
// `npx servicetitan`: the command line of the Rust crate servicetitan-cli, the same one the
// binary and the Python console script run. It prints to standard output and error itself.
'use strict'

const path = require('node:path')
const native = require('../platform.js').loadAddon()

// Installed also as `tap-servicetitan`, the name Singer runners such as Meltano start an
// extractor by: the command line knows that name and runs the tap.
const program = path.basename(process.argv[1] || 'servicetitan', '.js') === 'tap-servicetitan' ? 'tap-servicetitan' : 'servicetitan'

// Ctrl-C and SIGTERM end the command at once, as they end the binary. Node's own exit-on-signal
// handler re-raises the signal, which the command's handler (the sandbox waits for Ctrl-C to
// stop) would pass back to it again and again; a listener here replaces that handler.
for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
]) {
  process.on(signal, () => process.exit(128 + number))
}

native.runCli([program, ...process.argv.slice(2)]).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    process.stderr.write(`servicetitan: ${error && error.message ? error.message : error}\n`)
    process.exitCode = 1
  },
)
