/**
 * Publishing from inside `handle`: {@link publish}, {@link publishJson}, and the reply
 * shorthands {@link reply} and {@link replyJson}.
 *
 * What a call publishes is buffered by choreo and becomes visible only if the call
 * succeeds; it carries the handled event's correlation id and has it as causation id.
 * Every refusal throws a {@link PublishError}, which, left uncaught in `handle`,
 * dead-letters the event (it would be refused again on a redelivery).
 *
 * @module
 */

import { jsonBytes, toBytes } from './bytes.js';
import { PublishError, callImport } from './errors.js';
import * as host from './host.js';

/** The media type {@link publishJson} and {@link replyJson} set. */
export const JSON_TYPE = 'application/json';

/**
 * Attributes of an event to publish; all optional.
 *
 * @typedef {object} PublishOptions
 * @property {string} [type] CloudEvents `type`; the topic when none
 * @property {string} [contentType] media type of the data
 * @property {string} [key] the ordering key for consumers (CloudEvents `partitionkey`)
 * @property {string} [subject] CloudEvents `subject`
 * @property {Record<string, string>} [extensions] extension attributes (names: lower-case
 *   ASCII letters and digits)
 */

/**
 * Publishes `data` (bytes, or a string encoded as UTF-8) on `topic`; returns the id choreo
 * gave the event.
 *
 * @param {string} topic
 * @param {Uint8Array | string} [data]
 * @param {PublishOptions} [options]
 * @returns {string}
 */
export function publish(topic, data = '', options = {}) {
  const outgoing = {
    topic,
    type: options.type,
    datacontenttype: options.contentType,
    key: options.key,
    subject: options.subject,
    data: toBytes(data),
    extensions: Object.entries(options.extensions ?? {}),
  };
  return callImport(() => host.publish(outgoing), (kind, detail) => new PublishError(kind, detail));
}

/**
 * Publishes `value` encoded as JSON on `topic`, with media type `application/json`.
 *
 * @param {string} topic
 * @param {unknown} value
 * @param {PublishOptions} [options]
 * @returns {string}
 */
export function publishJson(topic, value, options = {}) {
  return publish(topic, encode(topic, value), { contentType: JSON_TYPE, ...options });
}

/**
 * Publishes `data` on the reply topic of `event`, answering a request-reply publisher
 * (`POST /v1/topics/...?reply=wait`).
 *
 * @param {import('./event.js').Event} event
 * @param {Uint8Array | string} [data]
 * @param {PublishOptions} [options]
 * @returns {string}
 */
export function reply(event, data = '', options = {}) {
  return publish(replyTopic(event), data, options);
}

/**
 * Publishes `value` as JSON on the reply topic of `event`.
 *
 * @param {import('./event.js').Event} event
 * @param {unknown} value
 * @param {PublishOptions} [options]
 * @returns {string}
 */
export function replyJson(event, value, options = {}) {
  const topic = replyTopic(event);
  return publish(topic, encode(topic, value), { contentType: JSON_TYPE, ...options });
}

/** @param {import('./event.js').Event} event */
function replyTopic(event) {
  if (event.replyTo === undefined) {
    throw new PublishError(
      'no-reply-topic',
      `event ${event.id} has no reply topic: its publisher does not wait for a reply`,
    );
  }
  return event.replyTo;
}

/**
 * @param {string} topic
 * @param {unknown} value
 */
function encode(topic, value) {
  try {
    return jsonBytes(value);
  } catch (e) {
    throw new PublishError('encode', `the data for ${topic}: ${e.message}`);
  }
}
