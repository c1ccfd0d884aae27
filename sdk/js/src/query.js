/**
 * The read side: {@link Request} as routed to a handler's `query`, and {@link Response},
 * whose errors are `application/problem+json` like the rest of choreo.
 *
 * @module
 */

import { jsonBytes, toBytes, toText } from './bytes.js';
import { HttpError } from './errors.js';

const REASONS = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * The WIT record `request`.
 *
 * @typedef {object} RawRequest
 * @property {string} method
 * @property {string} path
 * @property {string} query
 * @property {Array<[string, string]>} headers
 * @property {Uint8Array} body
 */

/** A read-side request: `GET|POST /v1/query/<handler><path>`. */
export class Request {
  /** @param {RawRequest} raw the WIT record */
  constructor(raw) {
    /** @type {RawRequest} */
    this.raw = raw;
  }

  /**
   * A request with `method` and `path`; meant for unit tests.
   *
   * @param {string} method
   * @param {string} path
   * @param {{ query?: string, body?: Uint8Array | string }} [options]
   */
  static forTest(method, path, options = {}) {
    return new Request({
      method,
      path,
      query: options.query ?? '',
      headers: [],
      body: toBytes(options.body ?? ''),
    });
  }

  /** The HTTP method, upper case: `GET` or `POST`. */
  get method() { return this.raw.method; }
  /** The path after `/v1/query/<handler>`, starting with `/`. */
  get path() { return this.raw.path; }
  /** The raw query string without the leading `?`; empty when there is none. */
  get query() { return this.raw.query; }
  /** The request headers, names in lower case. */
  get headers() { return this.raw.headers; }
  /** The body (empty for `GET`). */
  get body() { return this.raw.body; }

  /**
   * The non-empty segments of the path, as sent: `/counts/a.b/` gives `['counts', 'a.b']`.
   *
   * @returns {string[]}
   */
  get segments() {
    return this.raw.path.split('/').filter((s) => s !== '');
  }

  /**
   * The first value of query parameter `name`, as sent (not percent-decoded).
   *
   * @param {string} name
   * @returns {string | undefined}
   */
  queryParam(name) {
    for (const pair of this.raw.query.split('&')) {
      const at = pair.indexOf('=');
      if ((at < 0 ? pair : pair.slice(0, at)) === name) return at < 0 ? '' : pair.slice(at + 1);
    }
    return undefined;
  }

  /**
   * The first value of header `name` (compared case-insensitively).
   *
   * @param {string} name
   * @returns {string | undefined}
   */
  header(name) {
    const lower = name.toLowerCase();
    return this.raw.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /**
   * The body decoded as JSON; throws {@link HttpError} 400 when it is not.
   *
   * @returns {any}
   */
  json() {
    try {
      return JSON.parse(toText(this.raw.body));
    } catch (e) {
      throw new HttpError(400, `invalid json body: ${e.message}`);
    }
  }
}

/** The answer to a {@link Request}, sent to the HTTP client as is. */
export class Response {
  /**
   * @param {number} [status]
   * @param {Uint8Array | string} [body]
   * @param {Array<[string, string]>} [headers]
   */
  constructor(status = 200, body = '', headers = []) {
    this.status = status;
    this.body = toBytes(body);
    /** @type {Array<[string, string]>} */
    this.headers = [...headers];
  }

  /**
   * `value` as JSON; a 500 problem when it cannot be encoded.
   *
   * @param {unknown} value
   * @param {number} [status]
   */
  static json(value, status = 200) {
    let body;
    try {
      body = jsonBytes(value);
    } catch (e) {
      return Response.problem(500, `cannot encode the response as json: ${e.message}`);
    }
    return new Response(status, body, [['content-type', 'application/json']]);
  }

  /**
   * `text` as `text/plain; charset=utf-8`.
   *
   * @param {string} text
   * @param {number} [status]
   */
  static text(text, status = 200) {
    return new Response(status, text, [['content-type', 'text/plain; charset=utf-8']]);
  }

  /**
   * An `application/problem+json` error (RFC 9457) with a `detail` a person can act on.
   *
   * @param {number} status
   * @param {string} detail
   */
  static problem(status, detail) {
    const document = { type: 'about:blank', title: REASONS[status] ?? 'Error', status, detail };
    return new Response(status, JSON.stringify(document), [['content-type', 'application/problem+json']]);
  }

  /** A 404 problem: the default answer of `query`. */
  static notFound() {
    return Response.problem(404, 'this handler has nothing at this path');
  }

  /**
   * The first value of header `name` (compared case-insensitively).
   *
   * @param {string} name
   * @returns {string | undefined}
   */
  header(name) {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /** The WIT record handed to choreo. */
  toWit() {
    return { status: this.status, headers: this.headers.map(([n, v]) => [n, v]), body: this.body };
  }
}
