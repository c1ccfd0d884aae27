"""Talks to choreo with the official CloudEvents Python SDK and nothing else.

Usage: python cloudevents_sdk.py BASE_URL

Publishes one event in binary mode and one in structured mode, exactly as the SDK
renders them, then reads the log back and parses every event choreo hands out with
the SDK, checking that each attribute, extension and the data survived. Prints `ok`
and exits 0 on success; any failure raises.
"""

import json
import sys
import urllib.request

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_dict

BASE = sys.argv[1].rstrip("/")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def post(path, headers, body):
    request = urllib.request.Request(BASE + path, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202, response.status
        return json.loads(response.read())


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=60) as response:
        assert response.status == 200, response.status
        return json.loads(response.read())


binary = CloudEvent(
    {
        "type": "com.example.sdk.binary",
        "source": "sdk://python",
        # Sent as `content-type`; without it urllib would claim a form body.
        "datacontenttype": "application/json",
        "subject": "order-1",
        "partitionkey": "order-1",
        "traceparent": TRACEPARENT,
    },
    {"mode": "binary", "amount": 42},
)
headers, body = to_binary(binary)
accepted = post("/v1/topics/sdk.binary", headers, body)
assert accepted["id"] == binary["id"] and not accepted["duplicate"], accepted

structured = CloudEvent(
    {
        "type": "com.example.sdk.structured",
        "source": "sdk://python",
        "topic": "sdk.structured",
        "region": "eu",
    },
    {"mode": "structured"},
)
headers, body = to_structured(structured)
accepted = post("/v1/events", headers, body)
assert accepted["id"] == structured["id"], accepted
# The same source and id again: stored once, reported as a duplicate.
again = post("/v1/events", headers, body)
assert again["duplicate"] and again["seq"] == accepted["seq"], again

events = get("/v1/events?pattern=sdk.%3E")["events"]
assert len(events) == 2, events
by_id = {event["id"]: from_dict(event) for event in events}

back = by_id[binary["id"]]
for attribute in (
    "type",
    "source",
    "subject",
    "partitionkey",
    "traceparent",
    "specversion",
    "datacontenttype",
):
    assert back[attribute] == binary[attribute], (attribute, back[attribute], binary[attribute])
assert back.data == binary.data, back.data

back = by_id[structured["id"]]
for attribute in ("type", "source", "region", "topic"):
    assert back[attribute] == structured[attribute], (attribute, back[attribute])
assert back.data == structured.data, back.data

print("ok")
