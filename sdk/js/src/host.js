/**
 * The one place the SDK touches choreo's imports. componentize-js resolves these
 * specifiers to the imports of the world `handler` of `choreo:handler@0.1.0` when it builds
 * a component; the SDK's tests resolve them to a fake host (see `test/loader.mjs`).
 *
 * The bindings' conventions: `list<u8>` is a `Uint8Array`, `option<T>` is `T | undefined`,
 * a variant is `{ tag, val }`, an enum case is its name as a string, and an import whose
 * result is `err` throws an error whose `payload` is the error variant.
 *
 * @module
 */

export { publish } from 'choreo:handler/emit@0.1.0';
export * as state from 'choreo:handler/state@0.1.0';
export * as config from 'choreo:handler/config@0.1.0';
export { write } from 'choreo:handler/log@0.1.0';
