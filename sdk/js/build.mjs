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
 * visible (mapped to `/`), and resolves relative imports only. So the build runs in the
 * entry's directory, after writing beside the entry (and removing afterwards)
 * - `.choreo-sdk/`, a copy of this SDK's `src/`, and
 * - `.<entry>.choreo-build.js`, a copy of the entry whose imports of `@choreo/sdk` point to
 *   `./.choreo-sdk/index.js`.
 * The handler's other modules must live in the entry's directory or below it, and import
 * the SDK through the entry or as `./.choreo-sdk/index.js`.
 */

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, parse, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const SDK_SRC = join(SDK_DIR, 'src');
/** Where the SDK is staged beside the entry, and how the entry then imports it. */
const STAGED_SDK = '.choreo-sdk';
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
const staged = source.replace(
  /(\bfrom\s*|\bimport\s*\(?\s*)(['"])@choreo\/sdk\2/g,
  (_, keyword, quote) => `${keyword}${quote}./${STAGED_SDK}/index.js${quote}`,
);
const dir = dirname(entry);
const stagedEntry = join(dir, `.${basename(entry, '.js')}.choreo-build.js`);
const stagedSdk = join(dir, STAGED_SDK);
const command = [
  CLI, stagedEntry, '--wit', resolve(args.wit), '--world-name', WORLD,
  '-d', 'http', '-d', 'fetch-event', '-o', out,
];
let result;
try {
  rmSync(stagedSdk, { recursive: true, force: true });
  cpSync(SDK_SRC, stagedSdk, { recursive: true });
  writeFileSync(stagedEntry, staged);
  result = spawnSync(process.execPath, command, { cwd: dir, stdio: 'inherit' });
} finally {
  rmSync(stagedEntry, { force: true });
  rmSync(stagedSdk, { recursive: true, force: true });
}
if (result.error) fail(`cannot run componentize-js: ${result.error.message}`);
if (result.status !== 0) fail(`componentize-js failed (${result.status}): node ${command.join(' ')}`);
console.log(`built ${out} (${statSync(out).size.toLocaleString('en')} bytes)`);
