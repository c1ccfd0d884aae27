import { ComponentError, fake } from './host.js';

function check() {
  if (fake.refuseState) throw new ComponentError(fake.refuseState);
}

export function get(key) {
  check();
  return fake.store.get(key);
}

export function set(key, value) {
  check();
  fake.store.set(key, value);
}

function remove(key) {
  check();
  fake.store.delete(key);
}
export { remove as delete };

export function scan(prefix, startAfter, limit) {
  check();
  return [...fake.store.keys()]
    .filter((k) => k.startsWith(prefix) && (startAfter === undefined || k > startAfter))
    .sort()
    .slice(0, Math.min(limit, fake.scanCap))
    .map((k) => [k, fake.store.get(k)]);
}
