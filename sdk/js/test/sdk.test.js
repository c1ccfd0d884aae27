// Tests of the JavaScript SDK under Node.js, against fakes of choreo's imports
// (fake/*.js, wired in by loader.mjs). Run: npm test (in sdk/js).

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import {
  Event,
  HttpError,
  Info,
  PublishError,
  Reject,
  Request,
  Response,
  Retry,
  StateError,
  config,
  defineHandler,
  log,
  publish,
  publishJson,
  reply,
  replyJson,
  state,
} from '../src/index.js';
import { pages } from '../src/state.js';
import { fake } from './fake/host.js';

const text = (bytes) => new TextDecoder().decode(bytes);
const bytes = (s) => new TextEncoder().encode(s);

beforeEach(() => fake.reset());

describe('Info', () => {
  test('collects everything in order and becomes the WIT record', () => {
    const raw = new Info('router', '2.1.0', { description: 'fans out', subscribe: ['a.b'] })
      .subscribe('orders.manual')
      .publishes('orders.routed.*', 'orders.review.>')
      .schema('orders.routed.*', { type: 'object' })
      .schema('a.b', '{}')
      .toWit();
    assert.deepEqual(raw, {
      name: 'router',
      version: '2.1.0',
      description: 'fans out',
      subscriptions: ['a.b', 'orders.manual'],
      publishes: ['orders.routed.*', 'orders.review.>'],
      schemas: [
        { topic: 'orders.routed.*', schema: '{"type":"object"}' },
        { topic: 'a.b', schema: '{}' },
      ],
    });
  });
});

describe('Event', () => {
  test('reads the attributes', () => {
    const event = Event.forTest('a.b', 'x', {
      id: 'e-9',
      replyTo: '$reply.e-9',
      key: 'k',
      contentType: 'text/plain',
      extensions: { tenant: 'acme' },
    });
    assert.equal(event.id, 'e-9');
    assert.equal(event.correlationId, 'e-9');
    assert.equal(event.topic, 'a.b');
    assert.equal(event.type, 'a.b');
    assert.equal(event.replyTo, '$reply.e-9');
    assert.equal(event.key, 'k');
    assert.equal(event.contentType, 'text/plain');
    assert.equal(event.extension('tenant'), 'acme');
    assert.equal(event.extension('missing'), undefined);
    assert.deepEqual(event.extensions, { tenant: 'acme' });
    assert.equal(event.attempt, 1);
    assert.equal(event.seq, 0);
    assert.equal(event.text(), 'x');
  });

  test('json decodes, and malformed data rejects naming the event', () => {
    assert.deepEqual(Event.forTest('orders.created', '{"id":"o-1"}').json(), { id: 'o-1' });
    assert.throws(
      () => Event.forTest('orders.created', '{', { id: 'e-2' }).json(),
      (e) => e instanceof Reject && e.message.startsWith('event e-2 on orders.created: invalid json'),
    );
  });

  test('text rejects invalid utf-8', () => {
    assert.throws(() => Event.forTest('a', new Uint8Array([0xff, 0xfe])).text(), Reject);
  });
});

describe('publish', () => {
  test('hands every attribute to choreo and returns the id', () => {
    const id = publish('a.b', 'x', {
      type: 't',
      contentType: 'text/plain',
      key: 'k',
      subject: 's',
      extensions: { tenant: 'acme' },
    });
    assert.equal(id, 'id-1');
    const [sent] = fake.published;
    assert.equal(sent.topic, 'a.b');
    assert.equal(text(sent.data), 'x');
    assert.equal(sent.type, 't');
    assert.equal(sent.datacontenttype, 'text/plain');
    assert.equal(sent.key, 'k');
    assert.equal(sent.subject, 's');
    assert.deepEqual(sent.extensions, [['tenant', 'acme']]);
  });

  test('publishJson encodes and sets the media type', () => {
    publishJson('a.b', { n: 1 }, { key: 'k' });
    const [sent] = fake.published;
    assert.equal(text(sent.data), '{"n":1}');
    assert.equal(sent.datacontenttype, 'application/json');
    assert.equal(sent.key, 'k');
    assert.equal(sent.type, undefined);
  });

  test("a refusal becomes a PublishError carrying choreo's message", () => {
    fake.refusePublish = { tag: 'not-declared', val: 'topic a.b is not declared' };
    assert.throws(
      () => publish('a.b', 'x'),
      (e) => e instanceof PublishError && e.kind === 'not-declared' && e.message === 'undeclared topic: topic a.b is not declared',
    );
  });

  test('a value that is not json is an encode error naming the topic', () => {
    assert.throws(
      () => publishJson('a.b', 10n),
      (e) => e instanceof PublishError && e.kind === 'encode' && e.message.includes('a.b'),
    );
  });

  test('reply goes to the reply topic, or fails naming the event', () => {
    replyJson(Event.forTest('a.b', '', { replyTo: '$reply.r-1' }), { ok: true });
    assert.equal(fake.published[0].topic, '$reply.r-1');
    assert.throws(
      () => reply(Event.forTest('a.b', '', { id: 'e-7' }), 'x'),
      (e) => e instanceof PublishError && e.kind === 'no-reply-topic' && e.message.includes('e-7'),
    );
  });
});

describe('state', () => {
  test('bytes and json round-trip; absent keys give the fallback', () => {
    state.set('raw', 'hi');
    assert.equal(text(state.get('raw')), 'hi');
    state.setJson('n', { count: 2 });
    assert.deepEqual(state.getJson('n'), { count: 2 });
    assert.equal(state.getJson('missing', 7), 7);
    assert.equal(state.get('missing'), undefined);
    state.delete('n');
    assert.equal(state.getJson('n'), undefined);
  });

  test('a stored value that is not json is a decode error naming the key', () => {
    fake.store.set('count/x', bytes('nope'));
    assert.throws(() => state.getJson('count/x'), (e) => e instanceof StateError && e.kind === 'decode' && e.message.includes('count/x'));
  });

  test("a refusal becomes a StateError carrying choreo's message", () => {
    fake.refuseState = { tag: 'read-only', val: 'query cannot write' };
    assert.throws(() => state.set('k', 'v'), (e) => e instanceof StateError && e.kind === 'read-only' && e.detail === 'query cannot write');
  });

  test('scan pages past a capped limit until an empty page', () => {
    for (const k of ['a/1', 'a/2', 'a/3', 'a/4', 'a/5', 'a/6', 'a/7', 'b/1']) fake.store.set(k, bytes(`"${k}"`));
    fake.scanCap = 3;
    assert.deepEqual([...state.scan('a/')].map(([k]) => k), ['a/1', 'a/2', 'a/3', 'a/4', 'a/5', 'a/6', 'a/7']);
    assert.deepEqual([...state.scanJson('b/')], [['b/1', 'b/1']]);
  });

  test('a scan whose page does not move forward ends', () => {
    const stuck = () => [['k', new Uint8Array()]];
    assert.equal([...pages(stuck)].length, 1);
  });
});

describe('config and log', () => {
  test('config reads the manifest values', () => {
    fake.config.set('label', 'x');
    assert.equal(config.get('label'), 'x');
    assert.equal(config.get('missing', 'fallback'), 'fallback');
    assert.deepEqual(config.getAll(), { label: 'x' });
  });

  test('log writes at the level asked and refuses unknown levels', () => {
    log.info('hello');
    log.error('bad');
    assert.deepEqual(fake.logs, [['info', 'hello'], ['error', 'bad']]);
    assert.throws(() => log.write('loud', 'x'), TypeError);
  });
});

describe('Request and Response', () => {
  test('segments and query parameters', () => {
    const request = Request.forTest('GET', '/counts/orders.created/', { query: 'a=1&flag&b=2' });
    assert.deepEqual(request.segments, ['counts', 'orders.created']);
    assert.equal(request.queryParam('b'), '2');
    assert.equal(request.queryParam('flag'), '');
    assert.equal(request.queryParam('c'), undefined);
  });

  test('an invalid json body is an HttpError 400', () => {
    assert.throws(() => Request.forTest('POST', '/', { body: '{' }).json(), (e) => e instanceof HttpError && e.status === 400);
  });

  test('not found is a problem document', () => {
    const response = Response.notFound();
    assert.equal(response.status, 404);
    assert.equal(response.header('Content-Type'), 'application/problem+json');
    const body = JSON.parse(text(response.body));
    assert.equal(body.status, 404);
    assert.equal(body.title, 'Not Found');
  });
});

describe('defineHandler', () => {
  /** @param {(event: Event) => void} handle */
  const handlerWith = (handle, query) =>
    defineHandler({ describe: () => new Info('t', '0.1.0').subscribe('a.>'), handle, query });

  test('describe returns the WIT record', () => {
    assert.equal(handlerWith(() => {}).describe().name, 't');
  });

  test('a normal return acknowledges; Retry retries; Reject and anything else reject', () => {
    const raw = Event.forTest('a.b', '{}').raw;
    assert.deepEqual(handlerWith(() => {}).handle(raw), { tag: 'ok', val: undefined });
    assert.deepEqual(handlerWith(() => { throw new Retry('db busy'); }).handle(raw), {
      tag: 'err',
      val: { tag: 'retry', val: 'db busy' },
    });
    assert.deepEqual(handlerWith(() => { throw new Reject('bad order'); }).handle(raw), {
      tag: 'err',
      val: { tag: 'reject', val: 'bad order' },
    });
    const crashed = handlerWith((event) => event.json().missing.field).handle(raw);
    assert.equal(crashed.val.tag, 'reject');
    assert.match(crashed.val.val, /^TypeError: /);
    assert.equal(fake.logs.length, 1, 'an unexpected error is logged with its stack');
    assert.equal(fake.logs[0][0], 'error');
  });

  test('a publish refusal left uncaught rejects with the refusal', () => {
    fake.refusePublish = { tag: 'too-many', val: 'at most 100' };
    const result = handlerWith(() => publish('a.out', 'x')).handle(Event.forTest('a.b').raw);
    assert.deepEqual(result.val, { tag: 'reject', val: 'PublishError: too many publishes: at most 100' });
  });

  test('an async handle is rejected rather than acknowledged unfinished', () => {
    const result = handlerWith(async () => {}).handle(Event.forTest('a.b').raw);
    assert.equal(result.val.tag, 'reject');
  });

  test('query defaults to 404, maps HttpError to a problem and errors to 500', () => {
    const raw = Request.forTest('GET', '/x').raw;
    assert.equal(handlerWith(() => {}).query(raw).status, 404);
    assert.equal(handlerWith(() => {}, () => { throw new HttpError(409, 'busy'); }).query(raw).status, 409);
    const failed = handlerWith(() => {}, () => { throw new Error('boom'); }).query(raw);
    assert.equal(failed.status, 500);
    assert.match(text(failed.body), /boom/);
    assert.equal(handlerWith(() => {}, () => 'not a response').query(raw).status, 500);
    assert.equal(handlerWith(() => {}, () => Response.json({ n: 1 })).query(raw).status, 200);
  });

  test('refuses a definition without describe or handle', () => {
    assert.throws(() => defineHandler({ describe: () => new Info('t', '1') }), TypeError);
  });
});
