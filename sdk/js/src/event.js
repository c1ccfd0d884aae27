/**
 * The delivered event: {@link Event}, with its CloudEvents attributes, choreo's routing
 * fields, and decoding of its data.
 *
 * @module
 */

import { toBytes, toText } from './bytes.js';
import { Reject } from './errors.js';

/**
 * The WIT record `event` as the bindings hand it over.
 *
 * @typedef {object} RawEvent
 * @property {string} id
 * @property {string} source
 * @property {string} type
 * @property {string} topic
 * @property {string} time
 * @property {string | undefined} datacontenttype
 * @property {string | undefined} subject
 * @property {Uint8Array} data
 * @property {bigint} seq
 * @property {string | undefined} key
 * @property {string} correlationid
 * @property {string | undefined} causationid
 * @property {string | undefined} replyto
 * @property {number} attempt
 * @property {Array<[string, string]>} extensions
 */

/**
 * One immutable event, as delivered to `handle`.
 *
 * Decoding its data with {@link Event#json} or {@link Event#text} throws {@link Reject}
 * when it fails: data that does not decode now will not decode on a redelivery either.
 */
export class Event {
  /** @param {RawEvent} raw the WIT record */
  constructor(raw) {
    /** The WIT record, for what the accessors do not cover. @type {RawEvent} */
    this.raw = raw;
  }

  /**
   * An event on `topic` with placeholder attributes, for unit tests of handler logic;
   * choreo builds the real ones.
   *
   * @param {string} topic
   * @param {Uint8Array | string} [data]
   * @param {{ id?: string, contentType?: string, key?: string, replyTo?: string,
   *   attempt?: number, extensions?: Record<string, string> }} [options]
   * @returns {Event}
   */
  static forTest(topic, data = '', options = {}) {
    const id = options.id ?? 'test';
    return new Event({
      id,
      source: 'choreo://test',
      type: topic,
      topic,
      time: '1970-01-01T00:00:00Z',
      datacontenttype: options.contentType,
      subject: undefined,
      data: toBytes(data),
      seq: 0n,
      key: options.key,
      correlationid: id,
      causationid: undefined,
      replyto: options.replyTo,
      attempt: options.attempt ?? 1,
      extensions: Object.entries(options.extensions ?? {}),
    });
  }

  /** Unique id of the event (CloudEvents `id`). */
  get id() { return this.raw.id; }
  /** Who published it, as a URI reference (CloudEvents `source`). */
  get source() { return this.raw.source; }
  /** What happened (CloudEvents `type`). */
  get type() { return this.raw.type; }
  /** The topic it was published on. */
  get topic() { return this.raw.topic; }
  /** When it was published, RFC 3339 in UTC. */
  get time() { return this.raw.time; }
  /** Media type of the data (CloudEvents `datacontenttype`), if known. */
  get contentType() { return this.raw.datacontenttype; }
  /** CloudEvents `subject`. */
  get subject() { return this.raw.subject; }
  /** The payload, exactly as published. */
  get data() { return this.raw.data; }
  /**
   * Position in choreo's log, increasing in publish order. A `number`: exact up to 2^53,
   * far beyond any log; the WIT `u64` itself is `raw.seq`, a `bigint`.
   */
  get seq() { return Number(this.raw.seq); }
  /** The ordering key (CloudEvents `partitionkey`); none means the topic is the key. */
  get key() { return this.raw.key; }
  /** Id of the business transaction the event belongs to. */
  get correlationId() { return this.raw.correlationid; }
  /** Id of the event whose handling published this one; none if it came from outside. */
  get causationId() { return this.raw.causationid; }
  /** The topic on which the publisher waits for a reply; see `reply`. */
  get replyTo() { return this.raw.replyto; }
  /** Which delivery attempt this is: 1 the first time. */
  get attempt() { return this.raw.attempt; }
  /** The extension attributes, by name. @returns {Record<string, string>} */
  get extensions() { return Object.fromEntries(this.raw.extensions); }

  /**
   * The value of the extension attribute `name`, if present.
   *
   * @param {string} name
   * @returns {string | undefined}
   */
  extension(name) {
    const found = this.raw.extensions.find(([n]) => n === name);
    return found?.[1];
  }

  /**
   * The data decoded as JSON; throws {@link Reject} naming the event when it is not.
   *
   * @returns {any}
   */
  json() {
    try {
      return JSON.parse(toText(this.raw.data));
    } catch (e) {
      throw new Reject(`event ${this.id} on ${this.topic}: invalid json data: ${e.message}`);
    }
  }

  /**
   * The data as UTF-8 text; throws {@link Reject} naming the event when it is not.
   *
   * @returns {string}
   */
  text() {
    try {
      return toText(this.raw.data);
    } catch (e) {
      throw new Reject(`event ${this.id} on ${this.topic}: data is not utf-8: ${e.message}`);
    }
  }
}
