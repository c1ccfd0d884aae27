/**
 * Write choreo event handlers in JavaScript.
 *
 * A handler is an ES module, built into a WebAssembly component with componentize-js
 * (`build.mjs` beside this folder), that exports `describe`, `handle` and `query` for the
 * world `handler` of `choreo:handler@0.1.0`. {@link defineHandler} makes the three from a
 * handler's functions:
 *
 * ```js
 * import { Info, Response, defineHandler, publishJson, state } from '@choreo/sdk';
 *
 * export const { describe, handle, query } = defineHandler({
 *   describe: () => new Info('counter', '1.0.0').subscribe('orders.>').publishes('orders.counted'),
 *   handle(event) {
 *     const order = event.json(); // malformed data: dead-letter the event
 *     const count = state.getJson('count', 0) + 1;
 *     state.setJson('count', count);
 *     publishJson('orders.counted', { id: order.id, count });
 *   },
 *   query: () => Response.json({ count: state.getJson('count', 0) }),
 * });
 * ```
 *
 * Every call runs in a fresh instance, so anything that must outlive one event goes
 * through `state`. Throw {@link Retry} for a transient failure; {@link Reject} or any
 * other error dead-letters the event (see `errors.js`).
 *
 * Layout: `handler.js` (defineHandler, the export glue), `info.js`, `event.js`,
 * `emit.js` (publish, reply), `state.js`, `config.js`, `log.js`, `query.js` (Request,
 * Response), `errors.js`, `bytes.js`, and `host.js`, the one file that imports choreo's
 * WIT interfaces.
 *
 * @module
 */

export { defineHandler, handleError } from './handler.js';
export { Info } from './info.js';
export { Event } from './event.js';
export { JSON_TYPE, publish, publishJson, reply, replyJson } from './emit.js';
export { HandlerError, HttpError, PublishError, Reject, Retry, StateError } from './errors.js';
export { Request, Response } from './query.js';
export * as state from './state.js';
export * as config from './config.js';
export * as log from './log.js';
