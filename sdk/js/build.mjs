#!/usr/bin/env node
/**
 * Builds a JavaScript handler module into a choreo handler component.
 *
 *     node sdk/js/build.mjs handler.js -o handler.wasm
 *
 * `handler.js` is an ES module exporting `describe`, `handle` and `query` (usually through
 * `defineHandler` from `@choreo/sdk`). The build runs componentize-js, pinned in this
 * folder's `package-lock.json` (install it with `npm ci` here), as
 *
 *     componentize-js <entry> --wit <wit> --world-name handler -d http -d fetch-event -o <out>
 *
 * `-d http -d fetch-event` matter: without them the component imports `wasi:http` (for
 * `fetch`), which choreo does not link, and it is refused at deploy.
 *
 * componentize-js evaluates the module while it builds, with only the current directory
 * visible (mapped to `/`), and resolves relative imports only. So the build
 * - rewrites the entry's imports of `@choreo/sdk` to a relative path to this SDK, in a
 *   hidden copy of the entry written beside it (removed afterwards), and
 * - runs from the deepest directory holding both the entry and this SDK.
 * Other modules of the handler import the SDK through relative paths, or receive what they
 * need from the entry.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, parse, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const SDK_ENTRY = join(SDK_DIR, 'src', 'index.js');
/** The WIT contract in the choreo repository this SDK sits in. */
const DEFAULT_WIT = resolve(SDK_DIR, '..', '..', 'wit');
const WORLD = 'handler';
const CLI = join(SDK_DIR, 'node_modules', '@bytecodealliance', 'componentize-js', 'src', 'cli.js');

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { entry: undefined, out: undefined, wit: DEFAULT_WIT };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-o' || arg === '--out') args.out = argv[++i];
    else if (arg === '--wit') args.wit = argv[++i];
    else if (arg === '-h' || arg === '--help') {
      console.log('usage: node build.mjs <handler.js> [-o <out.wasm>] [--wit <dir>]');
      process.exit(0);
    } else if (args.entry === undefined) args.entry = arg;
    else fail(`unexpected argument ${arg}`);
  }
  if (args.entry === undefined) fail('usage: node build.mjs <handler.js> [-o <out.wasm>] [--wit <dir>]');
  return args;
}

/** The deepest directory containing both `a` and `b`. */
function commonAncestor(a, b) {
  const x = a.split(sep);
  const y = b.split(sep);
  let n = 0;
  while (n < x.length && n < y.length && x[n] === y[n]) n++;
  return x.slice(0, n).join(sep) || sep;
}

/** `to` as an import specifier relative to the directory `from`. */
function relativeSpecifier(from, to) {
  const path = relative(from, to).split(sep).join('/');
  return path.startsWith('.') ? path : `./${path}`;
}

const args = parseArgs(process.argv.slice(2));
const entry = resolve(args.entry);
if (!existsSync(entry) || !statSync(entry).isFile()) fail(`${args.entry} is not a file`);
const out = resolve(args.out ?? join(dirname(entry), `${parse(entry).name}.wasm`));
if (!existsSync(CLI)) {
  fail(
    `componentize-js is not installed in ${SDK_DIR}; it builds JavaScript handlers into components.\n` +
      `Fix: (cd ${SDK_DIR} && npm ci)   # needs Node.js 20+ and npm`,
  );
}

const source = readFileSync(entry, 'utf8');
const sdk = relativeSpecifier(dirname(entry), SDK_ENTRY);
const staged = source.replace(
  /(\bfrom\s*|\bimport\s*\(?\s*)(['"])@choreo\/sdk\2/g,
  (_, keyword, quote) => `${keyword}${quote}${sdk}${quote}`,
);
const stagedPath = join(dirname(entry), `.${basename(entry, '.js')}.choreo-build.js`);
const cwd = commonAncestor(dirname(entry), SDK_DIR);
const command = [
  CLI, stagedPath, '--wit', resolve(args.wit), '--world-name', WORLD,
  '-d', 'http', '-d', 'fetch-event', '-o', out,
];
writeFileSync(stagedPath, staged);
let result;
try {
  result = spawnSync(process.execPath, command, { cwd, stdio: 'inherit' });
} finally {
  rmSync(stagedPath, { force: true });
}
if (result.error) fail(`cannot run componentize-js: ${result.error.message}`);
if (result.status !== 0) fail(`componentize-js failed (${result.status}): node ${command.join(' ')}`);
console.log(`built ${out} (${statSync(out).size.toLocaleString('en')} bytes)`);
