/**
 * Structured logging into choreo's log, tagged with the handler name and the event id.
 *
 * Prefer these over `console.log`: stdout and stderr are captured too, but lose the level.
 * choreo cuts lines longer than the handler's log line limit.
 *
 * @module
 */

import * as host from './host.js';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error']);

/**
 * Writes one line at `level`.
 *
 * @param {'trace' | 'debug' | 'info' | 'warn' | 'error'} level
 * @param {string} message
 */
export function write(level, message) {
  if (!LEVELS.has(level)) throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
  host.write(level, String(message));
}

/** @param {string} message */
export const trace = (message) => write('trace', message);
/** @param {string} message */
export const debug = (message) => write('debug', message);
/** @param {string} message */
export const info = (message) => write('info', message);
/** @param {string} message */
export const warn = (message) => write('warn', message);
/** @param {string} message */
export const error = (message) => write('error', message);
