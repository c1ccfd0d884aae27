/**
 * {@link defineHandler}: turns a handler's functions into the exports componentize-js
 * expects for the world `handler` (`describe`, `handle`, `query`). This is where thrown
 * errors become WIT results, so every handler gets the same error mapping (see
 * `errors.js`).
 *
 * @module
 */

import { HandlerError, HttpError, Retry } from './errors.js';
import { Event } from './event.js';
import { Info } from './info.js';
import * as log from './log.js';
import { Request, Response } from './query.js';

/**
 * What a handler defines. `query` is optional: the default answers 404.
 *
 * @typedef {object} HandlerDefinition
 * @property {() => Info} describe the handler's name, version, subscriptions and publish
 *   patterns; called at deploy time, it must return the same answer every time
 * @property {(event: Event) => void} handle handles one event: return to acknowledge it,
 *   throw to retry or dead-letter it
 * @property {(request: Request) => Response} [query] answers a read-side request from
 *   state; publishing and writing state are refused here
 */

/**
 * The WIT `handle-error` for an error thrown by `handle`: {@link Retry} is a retry;
 * `Reject` and everything else a reject.
 *
 * @param {unknown} error
 * @returns {{ tag: 'retry' | 'reject', val: string }}
 */
export function handleError(error) {
  if (error instanceof Retry) return { tag: 'retry', val: error.message };
  if (error instanceof HandlerError) return { tag: 'reject', val: error.message };
  if (error instanceof Error) return { tag: 'reject', val: `${error.name}: ${error.message}` };
  return { tag: 'reject', val: `thrown: ${String(error)}` };
}

/**
 * The exports of a handler component. Export all three from the module componentize-js
 * builds:
 *
 * ```js
 * export const { describe, handle, query } = defineHandler({ describe() {...}, handle(event) {...} });
 * ```
 *
 * @param {HandlerDefinition} definition
 */
export function defineHandler(definition) {
  if (typeof definition?.describe !== 'function' || typeof definition?.handle !== 'function') {
    throw new TypeError('defineHandler needs describe() and handle(event) functions');
  }
  if (definition.query !== undefined && typeof definition.query !== 'function') {
    throw new TypeError('defineHandler: query must be a function taking a Request');
  }

  return {
    /** @returns {ReturnType<Info['toWit']>} */
    describe() {
      const info = definition.describe();
      if (!(info instanceof Info)) {
        throw new TypeError(`describe() returned ${typeof info}, not an Info`);
      }
      return info.toWit();
    },

    /**
     * Returns the `result` explicitly rather than throwing: componentize-js turns a
     * thrown `Error` into a trap (a retry), not into an `err`.
     *
     * @param {import('./event.js').RawEvent} raw
     */
    handle(raw) {
      try {
        const outcome = definition.handle(new Event(raw));
        if (outcome && typeof outcome.then === 'function') {
          // Nothing would wait for the promise: the call ends when handle returns.
          return {
            tag: 'err',
            val: { tag: 'reject', val: 'handle returned a promise; it must be synchronous' },
          };
        }
        return { tag: 'ok', val: undefined };
      } catch (error) {
        if (!(error instanceof HandlerError)) {
          // The reason recorded with the dead-letter only carries the name and message.
          log.error(`handle threw ${explain(error)}`);
        }
        return { tag: 'err', val: handleError(error) };
      }
    },

    /** @param {import('./query.js').RawRequest} raw */
    query(raw) {
      if (definition.query === undefined) return Response.notFound().toWit();
      let response;
      try {
        response = definition.query(new Request(raw));
      } catch (error) {
        if (error instanceof HttpError) {
          response = Response.problem(error.status, error.detail);
        } else {
          log.error(`query threw ${explain(error)}`);
          const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          response = Response.problem(500, reason);
        }
      }
      if (!(response instanceof Response)) {
        response = Response.problem(500, `query returned ${typeof response}, not a Response`);
      }
      return response.toWit();
    },
  };
}

/**
 * An error's name, message and stack, for the log (SpiderMonkey's `stack` holds frames only).
 *
 * @param {unknown} error
 */
function explain(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}\n${error.stack ?? ''}`.trimEnd();
  return `a non-error value: ${String(error)}`;
}
