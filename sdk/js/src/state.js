/**
 * The handler's own durable key-value store: raw bytes ({@link get}, {@link set},
 * {@link scan}) or JSON ({@link getJson}, {@link setJson}, {@link scanJson}).
 *
 * Each handler has one keyspace, shared by all its versions and invisible to other
 * handlers. Writes made in `handle` are committed with the delivery's outcome, so a failed
 * call writes nothing; reads see the committed state plus the call's own writes. In `query`
 * and `describe` writes throw a {@link StateError} of kind `read-only`.
 *
 * @module
 */

import { jsonBytes, toBytes, toText } from './bytes.js';
import { StateError, callImport } from './errors.js';
import * as host from './host.js';

/**
 * How many entries {@link scan} asks for per call. choreo may cap it lower; the iterator
 * pages on until a call returns nothing, so the cap only changes the number of calls.
 */
export const SCAN_PAGE = 256;

/** @param {string} kind @param {string} detail */
const wrap = (kind, detail) => new StateError(kind, detail);

/**
 * The raw value under `key`, or `undefined` when the key is absent.
 *
 * @param {string} key
 * @returns {Uint8Array | undefined}
 */
export function get(key) {
  return callImport(() => host.state.get(key), wrap) ?? undefined;
}

/**
 * Stores `value` (bytes, or a string encoded as UTF-8) under `key`.
 *
 * @param {string} key
 * @param {Uint8Array | string} value
 */
export function set(key, value) {
  callImport(() => host.state.set(key, toBytes(value)), wrap);
}

/**
 * Removes `key`; removing a missing key is not an error. Also exported as `delete`.
 *
 * @param {string} key
 */
export function remove(key) {
  callImport(() => host.state.delete(key), wrap);
}
export { remove as delete };

/**
 * The value under `key` decoded from JSON, or `fallback` when the key is absent.
 *
 * @template T
 * @param {string} key
 * @param {T} [fallback]
 * @returns {any}
 */
export function getJson(key, fallback = undefined) {
  const bytes = get(key);
  return bytes === undefined ? fallback : decode(key, bytes);
}

/**
 * Stores `value` encoded as JSON under `key`.
 *
 * @param {string} key
 * @param {unknown} value
 */
export function setJson(key, value) {
  let bytes;
  try {
    bytes = jsonBytes(value);
  } catch (e) {
    throw new StateError('encode', `key ${key}: ${e.message}`);
  }
  set(key, bytes);
}

/**
 * Every `[key, value]` whose key starts with `prefix`, in key order, asking choreo for
 * {@link SCAN_PAGE} entries at a time.
 *
 * @param {string} [prefix]
 * @returns {Generator<[string, Uint8Array]>}
 */
export function scan(prefix = '') {
  return pages((after) => callImport(() => host.state.scan(prefix, after, SCAN_PAGE), wrap));
}

/**
 * Every `[key, value]` whose key starts with `prefix`, values decoded from JSON.
 *
 * @param {string} [prefix]
 * @returns {Generator<[string, any]>}
 */
export function* scanJson(prefix = '') {
  for (const [key, bytes] of scan(prefix)) {
    yield [key, decode(key, bytes)];
  }
}

/**
 * Pages through a scan. A short page does not mean the end: choreo may cap the limit below
 * what was asked, so only an empty page does. Keys not past the last one seen are dropped,
 * so a page that does not move forward ends the scan instead of looping.
 *
 * @param {(after: string | undefined) => Array<[string, Uint8Array]>} fetch
 * @returns {Generator<[string, Uint8Array]>}
 */
export function* pages(fetch) {
  /** @type {string | undefined} */
  let after;
  for (;;) {
    const page = fetch(after).filter(([key]) => after === undefined || key > after);
    if (page.length === 0) return;
    for (const entry of page) {
      after = entry[0];
      yield entry;
    }
  }
}

/** @param {string} key @param {Uint8Array} bytes */
function decode(key, bytes) {
  try {
    return JSON.parse(toText(bytes));
  } catch (e) {
    throw new StateError('decode', `key ${key}: ${e.message}`);
  }
}
