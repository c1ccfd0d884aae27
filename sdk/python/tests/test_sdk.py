"""Tests of the Python SDK under CPython, against fakes of choreo's imports.

The SDK imports the bindings componentize-py generates; these tests generate them with
``componentize-py bindings`` (the pinned version, found as ``build.py`` finds it) into a
temp dir, then replace the import functions with the in-memory fakes of :class:`FakeHost`.
Run: ``python -m unittest discover -s sdk/python/tests`` with componentize-py installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SDK_DIR))

import build  # noqa: E402  (sdk/python/build.py: where componentize-py is found)

_BINDINGS = tempfile.TemporaryDirectory(prefix="choreo-py-bindings-")
subprocess.run(
    [build.find_componentize_py(), "-q", "-d", str(build.DEFAULT_WIT), "-w", build.WORLD, "bindings", _BINDINGS.name],
    check=True,
)
sys.path.insert(0, _BINDINGS.name)

from componentize_py_types import Err  # noqa: E402
from wit_world.imports import config as wit_config  # noqa: E402
from wit_world.imports import emit as wit_emit  # noqa: E402
from wit_world.imports import log as wit_log  # noqa: E402
from wit_world.imports import state as wit_state  # noqa: E402
from wit_world.imports import types as wit_types  # noqa: E402

import choreo_sdk  # noqa: E402
from choreo_sdk import (  # noqa: E402
    Event,
    HttpError,
    Info,
    PublishError,
    Reject,
    Request,
    Response,
    Retry,
    StateError,
    config,
    log,
    publish,
    publish_json,
    reply,
    reply_json,
    state,
)
from choreo_sdk.world import world_for  # noqa: E402


class FakeHost:
    """In-memory state, the events published, config, log lines, and refusals to return."""

    def __init__(self) -> None:
        self.published: list[wit_types.Outgoing] = []
        self.store: dict[str, bytes] = {}
        self.config: dict[str, str] = {}
        self.logs: list[tuple[str, str]] = []
        self.refuse_publish = None
        self.refuse_state = None
        self.scan_cap = 10**9

    def install(self, case: unittest.TestCase) -> None:
        originals = {
            (wit_emit, "publish"): self.publish,
            (wit_state, "get"): self.get,
            (wit_state, "set"): self.set,
            (wit_state, "delete"): self.delete,
            (wit_state, "scan"): self.scan,
            (wit_config, "get"): self.config.get,
            (wit_config, "get_all"): lambda: list(self.config.items()),
            (wit_log, "write"): lambda level, message: self.logs.append((level.name.lower(), message)),
        }
        for (module, name), fake in originals.items():
            case.addCleanup(setattr, module, name, getattr(module, name))
            setattr(module, name, fake)

    def publish(self, event: wit_types.Outgoing) -> str:
        if self.refuse_publish is not None:
            raise Err(self.refuse_publish)
        self.published.append(event)
        return f"id-{len(self.published)}"

    def _check(self) -> None:
        if self.refuse_state is not None:
            raise Err(self.refuse_state)

    def get(self, key: str):
        self._check()
        return self.store.get(key)

    def set(self, key: str, value: bytes) -> None:
        self._check()
        self.store[key] = value

    def delete(self, key: str) -> None:
        self._check()
        self.store.pop(key, None)

    def scan(self, prefix: str, start_after, limit: int):
        self._check()
        keys = sorted(k for k in self.store if k.startswith(prefix) and (start_after is None or k > start_after))
        return [(k, self.store[k]) for k in keys[: min(limit, self.scan_cap)]]


class SdkTest(unittest.TestCase):
    def setUp(self) -> None:
        self.host = FakeHost()
        self.host.install(self)


class InfoTest(SdkTest):
    def test_collects_everything_in_order_and_becomes_the_wit_record(self) -> None:
        raw = (
            Info("router", "2.1.0", description="fans out", subscribe=["a.b"])
            .subscribe("orders.manual")
            .publishes("orders.routed.*", "orders.review.>")
            .schema("orders.routed.*", {"type": "object"})
            .schema("a.b", "{}")
            .to_wit()
        )
        self.assertEqual(raw.name, "router")
        self.assertEqual(raw.version, "2.1.0")
        self.assertEqual(raw.description, "fans out")
        self.assertEqual(raw.subscriptions, ["a.b", "orders.manual"])
        self.assertEqual(raw.publishes, ["orders.routed.*", "orders.review.>"])
        self.assertEqual(
            [(s.topic, s.schema) for s in raw.schemas],
            [("orders.routed.*", '{"type":"object"}'), ("a.b", "{}")],
        )


class EventTest(SdkTest):
    def test_reads_the_attributes(self) -> None:
        event = Event.for_test(
            "a.b", "x", id="e-9", reply_to="$reply.e-9", key="k", content_type="text/plain", extensions={"tenant": "acme"}
        )
        self.assertEqual(event.id, "e-9")
        self.assertEqual(event.correlation_id, "e-9")
        self.assertEqual((event.topic, event.type), ("a.b", "a.b"))
        self.assertEqual(event.reply_to, "$reply.e-9")
        self.assertEqual(event.key, "k")
        self.assertEqual(event.content_type, "text/plain")
        self.assertEqual(event.extension("tenant"), "acme")
        self.assertIsNone(event.extension("missing"))
        self.assertEqual(event.extensions, {"tenant": "acme"})
        self.assertEqual(event.attempt, 1)
        self.assertEqual(event.text(), "x")

    def test_json_decodes_and_malformed_data_rejects_naming_the_event(self) -> None:
        self.assertEqual(Event.for_test("orders.created", '{"id":"o-1"}').json(), {"id": "o-1"})
        with self.assertRaises(Reject) as caught:
            Event.for_test("orders.created", "{", id="e-2").json()
        self.assertTrue(caught.exception.message.startswith("event e-2 on orders.created: invalid json"))

    def test_text_rejects_invalid_utf8(self) -> None:
        with self.assertRaises(Reject):
            Event.for_test("a", b"\xff\xfe").text()


class PublishTest(SdkTest):
    def test_hands_every_attribute_to_choreo_and_returns_the_id(self) -> None:
        id = publish("a.b", "x", type="t", content_type="text/plain", key="k", subject="s", extensions={"tenant": "acme"})
        self.assertEqual(id, "id-1")
        [sent] = self.host.published
        self.assertEqual((sent.topic, sent.data, sent.type), ("a.b", b"x", "t"))
        self.assertEqual((sent.datacontenttype, sent.key, sent.subject), ("text/plain", "k", "s"))
        self.assertEqual(sent.extensions, [("tenant", "acme")])

    def test_publish_json_encodes_and_sets_the_media_type(self) -> None:
        publish_json("a.b", {"n": 1}, key="k")
        [sent] = self.host.published
        self.assertEqual(sent.data, b'{"n":1}')
        self.assertEqual(sent.datacontenttype, "application/json")
        self.assertEqual(sent.key, "k")

    def test_a_refusal_is_a_publish_error_with_the_hosts_message(self) -> None:
        self.host.refuse_publish = wit_emit.PublishError_NotDeclared("topic a.b is not declared")
        with self.assertRaises(PublishError) as caught:
            publish("a.b", "x")
        self.assertEqual(caught.exception.kind, "not-declared")
        self.assertEqual(str(caught.exception), "undeclared topic: topic a.b is not declared")

    def test_a_value_that_is_not_json_is_an_encode_error_naming_the_topic(self) -> None:
        with self.assertRaises(PublishError) as caught:
            publish_json("a.b", {1, 2})
        self.assertEqual(caught.exception.kind, "encode")
        self.assertIn("a.b", str(caught.exception))

    def test_data_that_is_neither_bytes_nor_text_is_refused_pointing_to_the_json_variant(self) -> None:
        with self.assertRaises(TypeError) as caught:
            publish("a.b", {"n": 1})
        self.assertIn("_json", str(caught.exception))
        with self.assertRaises(TypeError):
            state.set("k", 3)
        self.assertEqual(self.host.published, [])

    def test_reply_goes_to_the_reply_topic_or_fails_naming_the_event(self) -> None:
        reply_json(Event.for_test("a.b", reply_to="$reply.r-1"), {"ok": True})
        self.assertEqual(self.host.published[0].topic, "$reply.r-1")
        with self.assertRaises(PublishError) as caught:
            reply(Event.for_test("a.b", id="e-7"), "x")
        self.assertEqual(caught.exception.kind, "no-reply-topic")
        self.assertIn("e-7", str(caught.exception))


class StateTest(SdkTest):
    def test_bytes_and_json_round_trip_and_absent_keys_give_the_default(self) -> None:
        state.set("raw", "hi")
        self.assertEqual(state.get("raw"), b"hi")
        state.set_json("n", {"count": 2})
        self.assertEqual(state.get_json("n"), {"count": 2})
        self.assertEqual(state.get_json("missing", 7), 7)
        self.assertIsNone(state.get("missing"))
        state.delete("n")
        self.assertIsNone(state.get_json("n"))

    def test_a_stored_value_that_is_not_json_is_a_decode_error_naming_the_key(self) -> None:
        self.host.store["count/x"] = b"nope"
        with self.assertRaises(StateError) as caught:
            state.get_json("count/x")
        self.assertEqual(caught.exception.kind, "decode")
        self.assertIn("count/x", str(caught.exception))

    def test_a_refusal_is_a_state_error_with_the_hosts_message(self) -> None:
        self.host.refuse_state = wit_state.StateError_ReadOnly("query cannot write")
        with self.assertRaises(StateError) as caught:
            state.set("k", "v")
        self.assertEqual((caught.exception.kind, caught.exception.message), ("read-only", "query cannot write"))

    def test_scan_pages_past_a_capped_limit_until_an_empty_page(self) -> None:
        for key in ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "b/1"]:
            self.host.store[key] = json.dumps(key).encode()
        self.host.scan_cap = 3
        self.assertEqual([k for k, _ in state.scan("a/")], ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7"])
        self.assertEqual(list(state.scan_json("b/")), [("b/1", "b/1")])

    def test_a_scan_whose_page_does_not_move_forward_ends(self) -> None:
        self.assertEqual(len(list(state._scan("", lambda after: [("k", b"")]))), 1)


class ConfigAndLogTest(SdkTest):
    def test_config_reads_the_manifest_values(self) -> None:
        self.host.config["label"] = "x"
        self.assertEqual(config.get("label"), "x")
        self.assertEqual(config.get("missing", "fallback"), "fallback")
        self.assertEqual(config.get_all(), {"label": "x"})

    def test_log_writes_at_the_level_asked_and_refuses_unknown_levels(self) -> None:
        log.info("hello")
        log.error("bad")
        self.assertEqual(self.host.logs, [("info", "hello"), ("error", "bad")])
        with self.assertRaises(ValueError):
            log.write("loud", "x")


class QueryTest(SdkTest):
    def test_segments_and_query_parameters(self) -> None:
        request = Request.for_test("GET", "/counts/orders.created/", query="a=1&flag&b=2")
        self.assertEqual(request.segments, ["counts", "orders.created"])
        self.assertEqual(request.query_param("b"), "2")
        self.assertEqual(request.query_param("flag"), "")
        self.assertIsNone(request.query_param("c"))

    def test_an_invalid_json_body_is_an_http_error_400(self) -> None:
        with self.assertRaises(HttpError) as caught:
            Request.for_test("POST", "/", body=b"{").json()
        self.assertEqual(caught.exception.status, 400)

    def test_not_found_is_a_problem_document(self) -> None:
        response = Response.not_found()
        self.assertEqual(response.status, 404)
        self.assertEqual(response.header("Content-Type"), "application/problem+json")
        body = json.loads(response.body)
        self.assertEqual((body["status"], body["title"]), (404, "Not Found"))


def module(**functions) -> object:
    """A stand-in for a handler module defining ``functions``."""
    namespace = type("handler_module", (), {})()
    namespace.__name__ = "handler_module"
    for name, function in functions.items():
        setattr(namespace, name, function)
    return namespace


def describe() -> Info:
    return Info("t", "0.1.0").subscribe("a.>")


class WorldTest(SdkTest):
    def outcome(self, handle) -> object:
        """What the generated export of ``handle`` gives choreo: ``None`` or the error."""
        world = world_for(module(describe=describe, handle=handle))()
        try:
            world.handle(Event.for_test("a.b", "{}").raw)
        except Err as e:
            return e.value
        return None

    def test_describe_returns_the_wit_record(self) -> None:
        self.assertEqual(world_for(module(describe=describe, handle=print))().describe().name, "t")

    def test_return_acknowledges_retry_retries_reject_and_anything_else_reject(self) -> None:
        self.assertIsNone(self.outcome(lambda event: None))

        def retry(event):
            raise Retry("db busy")

        def reject(event):
            raise Reject("bad order")

        self.assertEqual(self.outcome(retry), wit_types.HandleError_Retry("db busy"))
        self.assertEqual(self.outcome(reject), wit_types.HandleError_Reject("bad order"))
        crashed = self.outcome(lambda event: event.json()["missing"])
        self.assertIsInstance(crashed, wit_types.HandleError_Reject)
        self.assertEqual(crashed.value, "KeyError: 'missing'")
        self.assertEqual(len(self.host.logs), 1, "an unexpected exception is logged with its traceback")
        self.assertEqual(self.host.logs[0][0], "error")
        self.assertIn("Traceback", self.host.logs[0][1])

    def test_a_publish_refusal_left_uncaught_rejects_with_the_refusal(self) -> None:
        self.host.refuse_publish = wit_emit.PublishError_TooMany("at most 100")
        outcome = self.outcome(lambda event: publish("a.out", "x"))
        self.assertEqual(outcome, wit_types.HandleError_Reject("PublishError: too many publishes: at most 100"))

    def test_query_defaults_to_404_maps_http_error_to_a_problem_and_errors_to_500(self) -> None:
        raw = Request.for_test("GET", "/x").raw

        def answer(query):
            return world_for(module(describe=describe, handle=print, query=query))().query(raw)

        def conflict(request):
            raise HttpError(409, "busy")

        def boom(request):
            raise RuntimeError("boom")

        self.assertEqual(world_for(module(describe=describe, handle=print))().query(raw).status, 404)
        self.assertEqual(answer(conflict).status, 409)
        failed = answer(boom)
        self.assertEqual(failed.status, 500)
        self.assertIn(b"boom", failed.body)
        self.assertEqual(answer(lambda request: "not a response").status, 500)
        self.assertEqual(answer(lambda request: Response.json({"n": 1})).status, 200)

    def test_a_module_without_handle_is_refused_at_build_time(self) -> None:
        with self.assertRaises(TypeError):
            world_for(module(describe=describe))

    def test_the_package_exports_what_its_docs_name(self) -> None:
        for name in choreo_sdk.__all__:
            self.assertTrue(hasattr(choreo_sdk, name), name)


if __name__ == "__main__":
    unittest.main()
