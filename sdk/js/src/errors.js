/**
 * Why a call did not complete, and the errors the SDK throws.
 *
 * The rule, the same as the Rust and Python SDKs': an error that would happen again on a
 * redelivery of the same event is a *reject* (the event goes to `$dlq.<handler>` at once,
 * where an operator can inspect it and replay it after a fix); only a failure that a later
 * attempt may not meet is a *retry*. So `handle` ends like this:
 *
 * - it returns: the event is acknowledged (`handle` is synchronous: every import is);
 * - it throws {@link Retry}: the event is delivered again later, with backoff, until the
 *   handler's maximum number of attempts, then dead-lettered;
 * - it throws {@link Reject}: the event is dead-lettered now;
 * - it throws anything else (a `TypeError` on malformed data, a {@link PublishError} for an
 *   undeclared topic, a {@link StateError}, ...): the event is dead-lettered now, with the
 *   error's name and message as the reason, since the same code on the same event would
 *   throw it again. Throw {@link Retry} explicitly for what is transient.
 *
 * Either way, nothing the failed call published or wrote to state is kept.
 *
 * @module
 */

/** Base of {@link Retry} and {@link Reject}: a failure with a reason to record. */
export class HandlerError extends Error {
  /** @param {string} message the reason, recorded with the retry or the dead-letter */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** A transient failure: deliver the event again later. */
export class Retry extends HandlerError {}

/** A permanent failure: dead-letter the event now. */
export class Reject extends HandlerError {}

const PUBLISH_LABELS = {
  'invalid-topic': 'invalid topic',
  'invalid-event': 'invalid event',
  'not-declared': 'undeclared topic',
  'too-large': 'event too large',
  'too-many': 'too many publishes',
  'read-only': 'read-only call',
  'no-reply-topic': 'no reply topic',
  encode: 'cannot encode as json',
};

/**
 * A publish that failed. `kind` is choreo's refusal (`invalid-topic`, `invalid-event`,
 * `not-declared`, `too-large`, `too-many`, `read-only`), carrying choreo's message, or one
 * of the SDK's own: `no-reply-topic` and `encode`.
 */
export class PublishError extends Error {
  /**
   * @param {string} kind
   * @param {string} detail
   */
  constructor(kind, detail) {
    super(`${PUBLISH_LABELS[kind] ?? kind}: ${detail}`);
    this.name = 'PublishError';
    /** @type {string} */
    this.kind = kind;
    /** @type {string} */
    this.detail = detail;
  }
}

const STATE_LABELS = {
  'invalid-key': 'invalid state key',
  'too-large': 'state value too large',
  'read-only': 'read-only call',
  decode: 'state value is not json',
  encode: 'cannot encode the state value as json',
};

/**
 * A state operation that failed. `kind` is choreo's refusal (`invalid-key`, `too-large`,
 * `read-only`), carrying choreo's message, or one of the SDK's own: `decode` and `encode`.
 */
export class StateError extends Error {
  /**
   * @param {string} kind
   * @param {string} detail
   */
  constructor(kind, detail) {
    super(`${STATE_LABELS[kind] ?? kind}: ${detail}`);
    this.name = 'StateError';
    /** @type {string} */
    this.kind = kind;
    /** @type {string} */
    this.detail = detail;
  }
}

/**
 * Thrown in `query` to answer with an `application/problem+json` error;
 * {@link Request#json} throws it with status 400 for a body that is not JSON.
 */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   */
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.name = 'HttpError';
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.detail = detail;
  }
}

/**
 * Calls an import, turning its `err` result (an error carrying a `{ tag, val }` payload)
 * into `wrap(tag, val)`.
 *
 * @template T
 * @param {() => T} call
 * @param {(kind: string, detail: string) => Error} wrap
 * @returns {T}
 */
export function callImport(call, wrap) {
  try {
    return call();
  } catch (e) {
    const payload = e && typeof e === 'object' && 'payload' in e ? e.payload : undefined;
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') {
      throw wrap(payload.tag, String(payload.val));
    }
    throw e;
  }
}
