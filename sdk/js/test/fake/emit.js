import { ComponentError, fake } from './host.js';

export function publish(event) {
  if (fake.refusePublish) throw new ComponentError(fake.refusePublish);
  fake.published.push(event);
  return `id-${fake.published.length}`;
}
