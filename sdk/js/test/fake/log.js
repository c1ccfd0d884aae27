import { fake } from './host.js';

export function write(level, message) {
  fake.logs.push([level, message]);
}
