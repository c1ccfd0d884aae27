/**
 * shipping: the retail example's shipping step (JavaScript, with choreo's JavaScript SDK).
 *
 * On `payments.captured` it schedules a shipment for the order and publishes
 * `shipments.scheduled` with `{ order, customer, shipment, carrier }`, keyed by the order
 * id. The shipment id is derived from the order (`shp-<order>`), so scheduling the same
 * order twice names the same shipment; state `shipments/<order>` records it and a second
 * `payments.captured` for the order schedules nothing. The carrier is the manifest's
 * `[config]` `carrier` (default `parcel-post`).
 *
 * Query: `/shipments/<order>` gives the shipment, 404 when there is none.
 */

import { Info, Reject, Response, config, defineHandler, publishJson, state } from '@choreo/sdk';

export const { describe, handle, query } = defineHandler({
  describe() {
    return new Info('shipping', '1.0.0', { description: 'Schedules a shipment for every paid order' })
      .subscribe('payments.captured')
      .publishes('shipments.*');
  },

  handle(event) {
    const payment = event.json();
    if (typeof payment.order !== 'string') {
      throw new Reject(`event ${event.id}: no string \`order\``);
    }
    const record = `shipments/${payment.order}`;
    if (state.getJson(record) !== undefined) {
      return;
    }
    const shipment = {
      order: payment.order,
      customer: payment.customer ?? null,
      shipment: `shp-${payment.order}`,
      carrier: config.get('carrier', 'parcel-post'),
    };
    state.setJson(record, shipment);
    publishJson('shipments.scheduled', shipment, { key: payment.order });
  },

  query(request) {
    const [first, id, ...rest] = request.segments;
    if (first === 'shipments' && id !== undefined && rest.length === 0) {
      const shipment = state.getJson(`shipments/${id}`);
      return shipment === undefined ? Response.problem(404, `no shipment for order ${id}`) : Response.json(shipment);
    }
    return Response.notFound();
  },
});
