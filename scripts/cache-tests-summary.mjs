// Summary of http-cache-tests runs: inverso beside the proxies run in the
// same invocation (nginx, HAProxy) and the results the package ships for
// nginx 1.18, Squid and Varnish. Used by scripts/cache-tests.sh; run by hand:
//
//   node scripts/cache-tests-summary.mjs PACKAGE_DIR [--note TEXT]... NAME=RESULTS_JSON...
//       counts per result kind for every NAME (the first one, inverso, is
//       the subject) and the shipped results, then every test the first
//       NAME fails, with all columns; each --note TEXT is printed under the
//       first line
//   node scripts/cache-tests-summary.mjs PACKAGE_DIR --has-id TEST_ID
//       exit status 0 if the suite has a test TEST_ID, 1 if not
//
// PACKAGE_DIR is the unpacked npm package (its lib/, tests/ and results/).

import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

const usage = () => {
  console.error('usage: cache-tests-summary.mjs PACKAGE_DIR ([--note TEXT]... NAME=RESULTS_JSON... | --has-id TEST_ID)')
  process.exit(2)
}
const [pkgArg, ...rest] = process.argv.slice(2)
if (!pkgArg || rest.length === 0) usage()
const pkg = resolve(pkgArg)
const load = async (rel) => (await import(pathToFileURL(join(pkg, rel)).href)).default

// The suites as the package's cli.mjs runs them: the index plus
// Surrogate-Control.
const suites = await load('tests/index.mjs')
suites.push(await load('tests/surrogate-control.mjs'))

if (rest[0] === '--has-id') {
  if (rest.length !== 2) usage()
  const found = suites.some((suite) => suite.tests.some((test) => test.id === rest[1]))
  process.exit(found ? 0 : 1)
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const notes = []
// [column name, short name for the per-test list, results]
const systems = []
const shortNames = { inverso: 'inv', nginx: 'ngx', haproxy: 'hap' }
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--note') {
    if (i + 1 >= rest.length) usage()
    notes.push(rest[++i])
    continue
  }
  const eq = rest[i].indexOf('=')
  if (eq <= 0) usage()
  const name = rest[i].slice(0, eq)
  systems.push([name, shortNames[name] || name.slice(0, 3), readJson(rest[i].slice(eq + 1))])
}
if (systems.length === 0) usage()
const shipped = [
  ['nginx-1.18*', 'n18', 'nginx.json'],
  ['squid*', 'sqd', 'squid.json'],
  ['varnish*', 'vnh', 'varnish.json']
]
for (const [name, short, file] of shipped) {
  systems.push([name, short, readJson(join(pkg, 'results', file))])
}
const subject = systems[0][0]

const { determineTestResult } = await import(pathToFileURL(join(pkg, 'lib/display.mjs')).href)

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
    const symbols = systems.map(([, , results], i) => {
      const symbol = determineTestResult(suites, test.id, results)[2]
      counts[i].set(symbol, (counts[i].get(symbol) || 0) + 1)
      return symbol
    })
    if (listed.has(symbols[0])) {
      const raw = systems[0][2][test.id]
      const message = (Array.isArray(raw) ? raw.slice(0, 2).join(': ') : String(raw)).replace(/\s+/g, ' ')
      failing.push([suite.id, test.id, test.kind || 'required', symbols, message])
    }
  }
}

const label = 20
const col = Math.max(9, ...systems.map(([name]) => width(name) + 2))
console.log(`${total} tests`)
for (const note of notes) console.log(note)
console.log('* shipped with the package, not this run: its authors\' runs of Ubuntu\'s nginx 1.18, Squid 4.13 and Varnish 6.4')
console.log('')
console.log(padEnd('result', label) + systems.map(([name]) => padStart(name, col)).join(''))
for (const [symbol, name] of kinds) {
  const row = counts.map((c) => c.get(symbol) || 0)
  if (row.every((n) => n === 0)) continue
  console.log(padEnd(`${symbol} ${name}`, label) + row.map((n) => padStart(String(n), col)).join(''))
}
console.log('')

const what = 'failed (⛔️), failed their setup (🔹), broke the harness (⁉️) or asked for a retry (↻)'
if (failing.length === 0) {
  console.log(`${subject}: no test ${what.replace('their', 'its')}`)
} else {
  console.log(`${subject}: ${failing.length} test(s) ${what}`)
  console.log('columns: ' + systems.map(([name, short]) => `${short} ${name}`).join(', ') +
    `; message: ${subject}'s`)
  const suiteW = Math.max(5, ...failing.map((f) => width(f[0])))
  const idW = Math.max(4, ...failing.map((f) => width(f[1])))
  const kindW = 8
  const sym = (s) => padEnd(s, 3)
  console.log(padEnd('suite', suiteW) + '  ' + padEnd('test', idW) + '  ' + padEnd('kind', kindW) +
    '  ' + systems.map(([, short]) => sym(short)).join(' ') + '  message')
  for (const [suiteId, testId, kind, symbols, message] of failing) {
    console.log(padEnd(suiteId, suiteW) + '  ' + padEnd(testId, idW) + '  ' + padEnd(kind, kindW) +
      '  ' + symbols.map(sym).join(' ') + '  ' + message)
  }
}
