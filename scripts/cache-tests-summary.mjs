// Summary of an http-cache-tests run against inverso, side by side with the
// results the package ships for nginx, Squid and Varnish. Used by
// scripts/cache-tests.sh; run by hand:
//
//   node scripts/cache-tests-summary.mjs PACKAGE_DIR RESULTS_JSON
//       counts per result kind, then every test inverso fails
//   node scripts/cache-tests-summary.mjs PACKAGE_DIR --has-id TEST_ID
//       exit status 0 if the suite has a test TEST_ID, 1 if not
//
// PACKAGE_DIR is the unpacked npm package (its lib/, tests/ and results/).

import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const [pkgArg, resultsArg, idArg] = process.argv.slice(2)
if (!pkgArg || !resultsArg || (resultsArg === '--has-id' && !idArg)) {
  console.error('usage: cache-tests-summary.mjs PACKAGE_DIR (RESULTS_JSON | --has-id TEST_ID)')
  process.exit(2)
}
const pkg = resolve(pkgArg)
const load = async (rel) => (await import(pathToFileURL(join(pkg, rel)).href)).default

// The suites as the package's cli.mjs runs them: the index plus
// Surrogate-Control.
const suites = await load('tests/index.mjs')
suites.push(await load('tests/surrogate-control.mjs'))
const { determineTestResult } = await import(pathToFileURL(join(pkg, 'lib/display.mjs')).href)

if (resultsArg === '--has-id') {
  const found = suites.some((suite) => suite.tests.some((test) => test.id === idArg))
  process.exit(found ? 0 : 1)
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const systems = [
  ['inverso', readJson(resultsArg)],
  ['nginx', readJson(join(pkg, 'results/nginx.json'))],
  ['squid', readJson(join(pkg, 'results/squid.json'))],
  ['varnish', readJson(join(pkg, 'results/varnish.json'))]
]

// lib/display.mjs's result kinds, by the symbol it returns in [2].
const kinds = [
  ['✅', 'pass'],
  ['⛔️', 'fail'],
  ['⚠️', 'optional fail'],
  ['Y', 'check: yes'],
  ['N', 'check: no'],
  ['🔹', 'setup fail'],
  ['⁉️', 'harness fail'],
  ['⚪️', 'dependency fail'],
  ['↻', 'retry'],
  ['-', 'untested']
]
const listed = new Set(['⛔️', '🔹', '⁉️', '↻'])

// Terminal columns a string takes: the emoji symbols above are 2 wide, a
// variation selector (U+FE0F) none.
const width = (s) => {
  let w = 0
  for (const ch of s) {
    const cp = ch.codePointAt(0)
    if (cp === 0xfe0f) continue
    w += cp >= 0x2300 ? 2 : 1
  }
  return w
}
const padEnd = (s, n) => s + ' '.repeat(Math.max(0, n - width(s)))
const padStart = (s, n) => ' '.repeat(Math.max(0, n - width(s))) + s

const counts = systems.map(() => new Map())
const failing = []
let total = 0
for (const suite of suites) {
  for (const test of suite.tests) {
    // The cli never runs browser-only tests against a proxy.
    if (test.browser_only === true) continue
    total++
    const symbols = systems.map(([, results], i) => {
      const symbol = determineTestResult(suites, test.id, results)[2]
      counts[i].set(symbol, (counts[i].get(symbol) || 0) + 1)
      return symbol
    })
    if (listed.has(symbols[0])) {
      const raw = systems[0][1][test.id]
      const message = (Array.isArray(raw) ? raw.slice(0, 2).join(': ') : String(raw)).replace(/\s+/g, ' ')
      failing.push([suite.id, test.id, test.kind || 'required', symbols, message])
    }
  }
}

const label = 20
const col = 9
console.log(`${total} tests (nginx, Squid and Varnish: results shipped with the package)`)
console.log('')
console.log(padEnd('result', label) + systems.map(([name]) => padStart(name, col)).join(''))
for (const [symbol, name] of kinds) {
  const row = counts.map((c) => c.get(symbol) || 0)
  if (row.every((n) => n === 0)) continue
  console.log(padEnd(`${symbol} ${name}`, label) + row.map((n) => padStart(String(n), col)).join(''))
}
console.log('')

if (failing.length === 0) {
  console.log('inverso: no test failed (⛔️), failed its setup (🔹), broke the harness (⁉️) or asked for a retry (↻)')
} else {
  console.log(`inverso: ${failing.length} test(s) failed (⛔️), failed their setup (🔹), broke the harness (⁉️) or asked for a retry (↻)`)
  const suiteW = Math.max(5, ...failing.map((f) => width(f[0])))
  const idW = Math.max(4, ...failing.map((f) => width(f[1])))
  const kindW = 8
  const sym = (s) => padEnd(s, 3)
  console.log(padEnd('suite', suiteW) + '  ' + padEnd('test', idW) + '  ' + padEnd('kind', kindW) +
    '  inv ngx sqd vnh  message')
  for (const [suiteId, testId, kind, symbols, message] of failing) {
    console.log(padEnd(suiteId, suiteW) + '  ' + padEnd(testId, idW) + '  ' + padEnd(kind, kindW) +
      '  ' + symbols.map(sym).join(' ') + '  ' + message)
  }
}
