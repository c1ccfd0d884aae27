"""payments: the retail example's payment step (Python, with choreo's Python SDK).

On ``inventory.reserved`` (the order, carried on by inventory) it captures or declines the
payment, by a deterministic rule so that the example and its test know each outcome:

- a card number ending in ``0000`` is declined (``card declined``);
- an ``amount_cents`` over the manifest's ``[config]`` ``max_amount_cents`` (default
  50000) is declined (``amount over the limit``);
- anything else is captured.

It publishes ``payments.captured`` or ``payments.declined`` with ``{"order", "customer",
"amount_cents", ...}``, keyed by the order id, and never sees the card number again: only
its last four digits travel on. State ``payments/<order>`` records the decision, so a
reservation seen twice is paid (or declined) once. Query: ``/payments/<order>`` gives the
decision, 404 when there is none.
"""

from choreo_sdk import Info, Reject, Response, config, publish_json, state

DEFAULT_MAX_AMOUNT_CENTS = 50000


def decide(order, max_amount_cents):
    """The reason to decline ``order``, or ``None`` to capture it."""
    card = str(order.get("card", ""))
    if card.endswith("0000"):
        return "card declined"
    if int(order.get("amount_cents", 0)) > max_amount_cents:
        return "amount over the limit"
    return None


def describe():
    return (
        Info("payments", "1.0.0", description="Captures or declines the payment of reserved orders")
        .subscribe("inventory.reserved")
        .publishes("payments.*")
    )


def handle(event):
    order = event.json()
    order_id = order.get("order")
    if not isinstance(order_id, str):
        raise Reject(f"event {event.id}: no string `order`")
    record = f"payments/{order_id}"
    if state.get_json(record) is not None:
        return
    limit = int(config.get("max_amount_cents", str(DEFAULT_MAX_AMOUNT_CENTS)))
    reason = decide(order, limit)
    payment = {
        "order": order_id,
        "customer": order.get("customer"),
        "amount_cents": order.get("amount_cents"),
        "card_last4": str(order.get("card", ""))[-4:],
    }
    if reason is None:
        payment["status"] = "captured"
        topic = "payments.captured"
    else:
        payment["status"] = "declined"
        payment["reason"] = reason
        topic = "payments.declined"
    state.set_json(record, payment)
    publish_json(topic, payment, key=order_id)


def query(request):
    match request.segments:
        case ["payments", order_id]:
            payment = state.get_json(f"payments/{order_id}")
            if payment is None:
                return Response.problem(404, f"no payment for order {order_id}")
            return Response.json(payment)
    return Response.not_found()
