'use strict'
// The README's Node quick start runs as written, and its process ends by itself.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')

// The README, whose first ```js block is the Node quick start.
const QUICKSTART = path.join(__dirname, '..', '..', 'README.md')

function firstJsBlock(markdown) {
  const match = /```js\n([\s\S]*?)```/.exec(markdown)
  assert.ok(match, `no \`\`\`js block in ${QUICKSTART}`)
  return match[1]
}

test('the quick start runs and exits by itself', async () => {
  const code = firstJsBlock(fs.readFileSync(QUICKSTART, 'utf8'))
  // Run from the package folder, so that require('servicetitan') resolves to this package.
  const child = spawn(process.execPath, ['--input-type=commonjs', '-e', code], {
    cwd: path.join(__dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [exitCode, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  assert.equal(signal, null, `killed after 30 s: ${stdout}${stderr}`)
  assert.equal(exitCode, 0, stderr)
  assert.match(stdout, /first page: 50 customers/)
  assert.match(stdout, /not found \(404, traceId 00-/)
  assert.match(stdout, /reportRows: 2500/)
})
