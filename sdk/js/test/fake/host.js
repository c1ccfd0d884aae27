// The record the fakes of choreo's imports share: an in-memory state store, the events
// published, the manifest config, the log lines written, and configurable refusals.

/** Thrown by a fake import to return `err(payload)`, as the componentize-js bindings do. */
export class ComponentError extends Error {
  constructor(payload) {
    super(`${payload.tag}: ${payload.val}`);
    this.payload = payload;
  }
}

export const fake = {
  /** @type {object[]} */
  published: [],
  /** @type {Map<string, Uint8Array>} */
  store: new Map(),
  /** @type {Map<string, string>} */
  config: new Map(),
  /** @type {Array<[string, string]>} */
  logs: [],
  /** An `{ tag, val }` publish error to return, if any. */
  refusePublish: undefined,
  /** An `{ tag, val }` state error to return, if any. */
  refuseState: undefined,
  /** The most entries one scan returns, as choreo caps it. */
  scanCap: Infinity,
  reset() {
    this.published = [];
    this.store = new Map();
    this.config = new Map();
    this.logs = [];
    this.refusePublish = undefined;
    this.refuseState = undefined;
    this.scanCap = Infinity;
  },
};
