'use strict'
// The loader names this platform's prebuilt package, and says clearly when there is none.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { addonLoadError, currentPlatform, platformOfTriple, supportedPlatforms } = require('../platform.js')
const pkg = require('../package.json')

test('every napi target has its platform package under npm/, named as the loader looks for it', () => {
  const dirs = fs.readdirSync(path.join(__dirname, '..', 'npm')).sort()
  assert.deepEqual([...supportedPlatforms()].sort(), dirs)
  for (const dir of dirs) {
    const platformPkg = require(`../npm/${dir}/package.json`)
    assert.equal(platformPkg.name, `servicetitan-${dir}`)
    assert.equal(platformPkg.main, `servicetitan.${dir}.node`)
  }
  assert.equal(platformOfTriple('x86_64-unknown-linux-musl'), 'linux-x64-musl')
  assert.equal(platformOfTriple('aarch64-apple-darwin'), 'darwin-arm64')
  assert.equal(platformOfTriple('x86_64-pc-windows-msvc'), 'win32-x64-msvc')
})

test('this machine is one of the supported platforms', () => {
  assert.ok(supportedPlatforms().includes(currentPlatform()), currentPlatform())
})

test('on an unsupported platform the error says so and lists the supported ones', () => {
  const cause = new Error("Cannot find module 'servicetitan-freebsd-x64'\nRequire stack:\n- native.js")
  const err = addonLoadError(cause, 'freebsd-x64')
  assert.equal(err.code, 'ERR_SERVICETITAN_ADDON')
  assert.equal(err.cause, cause)
  assert.match(err.message, /^servicetitan: no prebuilt addon for freebsd-x64 \(supported: linux-x64-gnu, /)
  assert.match(err.message, /build it from a clone of the repository \(needs Rust\)/)
  assert.match(err.message, /What was tried: Cannot find module 'servicetitan-freebsd-x64'$/)
})

test('on a supported platform whose package is missing the error names the package to install', () => {
  const err = addonLoadError(new Error('Cannot find native binding'), 'linux-arm64-musl')
  assert.match(err.message, new RegExp(`the package servicetitan-linux-arm64-musl@${pkg.version.replace(/\./g, '\\.')}, an optional dependency`))
  assert.match(err.message, /--omit=optional/)
})
