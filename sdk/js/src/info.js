/**
 * What a handler is and what it does: {@link Info}, the answer of `describe`.
 *
 * @module
 */

/**
 * The handler's name, version, description, subscriptions, publish patterns and schemas.
 * Build it with options, with the chainable methods, or both:
 *
 * ```js
 * new Info('enricher', '1.0.0', { description: 'Adds totals to new orders' })
 *   .subscribe('orders.created')
 *   .publishes('orders.enriched')
 *   .schema('orders.enriched', { type: 'object' });
 * ```
 *
 * `name` is the handler's identity (its queue, state and dead-letter topic): lower-case
 * letters, digits and `-`, starting with a letter.
 */
export class Info {
  /**
   * @param {string} name
   * @param {string} version
   * @param {{ description?: string, subscribe?: string[], publishes?: string[],
   *   schemas?: Record<string, unknown> }} [options]
   */
  constructor(name, version, options = {}) {
    this.name = name;
    this.version = version;
    this.description = options.description ?? '';
    /** @type {string[]} */
    this.subscriptions = [...(options.subscribe ?? [])];
    /** @type {string[]} */
    this.publishPatterns = [...(options.publishes ?? [])];
    /** @type {Array<{ topic: string, schema: string }>} */
    this.schemas = [];
    for (const [topic, schema] of Object.entries(options.schemas ?? {})) {
      this.schema(topic, schema);
    }
  }

  /** Sets the one line shown in the catalog. @param {string} description */
  describe(description) {
    this.description = description;
    return this;
  }

  /**
   * Receive events whose topic matches a pattern (`*` one token, `>` one or more).
   *
   * @param {...string} patterns
   */
  subscribe(...patterns) {
    this.subscriptions.push(...patterns);
    return this;
  }

  /**
   * Allow publishing to topics matching a pattern; any other publish is refused.
   *
   * @param {...string} patterns
   */
  publishes(...patterns) {
    this.publishPatterns.push(...patterns);
    return this;
  }

  /**
   * Declares the JSON Schema of the data on `topic`: JSON text, or an object that is
   * encoded as JSON.
   *
   * @param {string} topic
   * @param {unknown} schema
   */
  schema(topic, schema) {
    this.schemas.push({ topic, schema: typeof schema === 'string' ? schema : JSON.stringify(schema) });
    return this;
  }

  /** The WIT record handed to choreo. */
  toWit() {
    return {
      name: this.name,
      version: this.version,
      description: this.description,
      subscriptions: [...this.subscriptions],
      publishes: [...this.publishPatterns],
      schemas: this.schemas.map((s) => ({ ...s })),
    };
  }
}
