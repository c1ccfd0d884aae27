import { fake } from './host.js';

export function get(key) {
  return fake.config.get(key);
}

export function getAll() {
  return [...fake.config.entries()];
}
