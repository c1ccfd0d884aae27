/**
 * Values from the handler's manifest (`<name>.toml` beside the component, table
 * `[config]`). Read-only, available in every call.
 *
 * @module
 */

import * as host from './host.js';

/**
 * The configured value for `key`, or `fallback` when there is none.
 *
 * @param {string} key
 * @param {string} [fallback]
 * @returns {string | undefined}
 */
export function get(key, fallback = undefined) {
  return host.config.get(key) ?? fallback;
}

/**
 * Every configured key and value.
 *
 * @returns {Record<string, string>}
 */
export function getAll() {
  return Object.fromEntries(host.config.getAll());
}
