/**
 * Conversions between the payloads handlers use (text, JSON values) and the bytes the WIT
 * interface carries.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes for `data`: a `Uint8Array` (or another typed array / `ArrayBuffer`) as is, a
 * string encoded as UTF-8.
 *
 * @param {Uint8Array | ArrayBuffer | ArrayBufferView | string} data
 * @returns {Uint8Array}
 */
export function toBytes(data) {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`expected a string or bytes, got ${data === null ? 'null' : typeof data}`);
}

/**
 * `bytes` as UTF-8 text; throws a `TypeError` when they are not valid UTF-8.
 *
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function toText(bytes) {
  return decoder.decode(bytes);
}

/**
 * `value` as JSON bytes; throws a `TypeError` when it cannot be encoded (a cycle, a
 * BigInt) or encodes to nothing (`undefined`, a function).
 *
 * @param {unknown} value
 * @returns {Uint8Array}
 */
export function jsonBytes(value) {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`${typeof value} is not a JSON value`);
  return encoder.encode(text);
}
