"""The swappable schema (rest_bridge.live_schema), its follower and the --reflect flags, with
schemas built in code (tests.rest_bridge.protos) and the app called in-process."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses

import grpc
import httpx
import pytest

from rest_bridge.__main__ import build_parser
from rest_bridge.__main__ import main as bridge_main
from rest_bridge.app import create_app
from rest_bridge.config import BridgeConfig
from rest_bridge.descriptor_set import Schema, SchemaError
from rest_bridge.live_schema import LiveSchema
from rest_bridge.options import switch
from rest_bridge.schema_follower import SchemaFollower
from tests.rest_bridge.protos import Rpc, rule, service_schema
from tests.rest_bridge.upstream import dead_address

pytestmark = pytest.mark.anyio


def schema(fingerprint: str, *rpcs: Rpc) -> Schema:
    return dataclasses.replace(service_schema(rpcs), fingerprint=fingerprint)


FIRST = schema("first", Rpc("Get", rule("get", "/v1/things/{name}")))
SECOND = schema("second", Rpc("Get", rule("get", "/v2/things/{name}")))
COLLIDING = schema(
    "colliding",
    Rpc("Get", rule("get", "/v1/things/{name}")),
    Rpc("Other", rule("get", "/v1/things/{id}")),
)


async def test_offer_swaps_a_changed_schema_and_keeps_a_served_one_in_hand() -> None:
    """A changed schema replaces the served one; a request's ServedSchema read before the swap
    still routes by the old table."""
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        live = LiveSchema(channel)
        assert live.offer(FIRST, "test")
        before = live.current
        assert before is not None
        assert not live.offer(dataclasses.replace(FIRST), "test")  # same fingerprint
        assert live.current is before
        assert live.offer(SECOND, "test")
        assert live.current is not before
    assert before.table.match("GET", "/v1/things/a") is not None
    assert live.current.table.match("GET", "/v1/things/a") is None
    assert live.current.table.match("GET", "/v2/things/a") is not None


async def test_colliding_schema_is_refused_and_the_served_one_stays() -> None:
    """A schema whose rules collide is not swapped in; error says why, naming both methods."""
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        live = LiveSchema(channel)
        live.load(FIRST)
        served = live.current
        assert not live.offer(COLLIDING, "test")
    assert live.current is served
    assert "collide" in live.error
    assert "Get" in live.error
    assert "Other" in live.error


async def test_app_without_a_schema_is_503_then_serves_once_one_is_offered() -> None:
    """create_app with no schema: /healthz 200, routes, /openapi.json and /readyz 503 with
    Retry-After; after an offer the route is matched (a 503 from the dead upstream's call
    would say "unavailable" too, so the route's 404-vs-match is what is checked)."""
    with dead_address() as address:
        async with grpc.aio.insecure_channel(address) as channel:
            app = create_app(BridgeConfig(upstream=address, timeout=1), channel, None)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                assert (await client.get("/healthz")).status_code == 200
                for path in ("/v1/things/a", "/openapi.json", "/readyz"):
                    answer = await client.get(path)
                    assert answer.status_code == 503, path
                    assert answer.headers["retry-after"] == "1"
                    assert "no schema loaded yet" in answer.json()["error"]["message"]
                app.live.offer(FIRST, "test")
                assert (await client.get("/v2/things/a")).status_code == 404
                spec = (await client.get("/openapi.json")).json()
    assert "/v1/things/{name}" in spec["paths"]


async def test_follower_loads_every_interval_and_records_failures() -> None:
    """With an interval the follower loads again and again; a failing load leaves the served
    schema and puts its reason in error."""
    loads: list[int] = []
    fourth = asyncio.Event()

    async def load() -> Schema:
        loads.append(1)
        if len(loads) >= 4:
            fourth.set()
        if len(loads) >= 3:
            raise SchemaError("upstream said no")
        return FIRST

    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        live = LiveSchema(channel)
        follower = SchemaFollower(live, load, "test", interval=0.05)
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(fourth.wait(), 5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert live.current is not None
    assert "upstream said no" in live.error


async def test_trigger_reloads_a_follower_without_interval() -> None:
    """trigger (what SIGHUP calls) makes one load happen, with no interval set."""

    async def load() -> Schema:
        return SECOND

    swapped = asyncio.Event()

    class Recording(LiveSchema):
        def offer(self, schema: Schema, source: str) -> bool:
            changed = super().offer(schema, source)
            if changed:
                swapped.set()
            return changed

    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        live = Recording(channel)
        live.load(FIRST)
        follower = SchemaFollower(live, load, "test")
        task = asyncio.create_task(follower.run())
        try:
            follower.trigger("SIGHUP")
            await asyncio.wait_for(swapped.wait(), 5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert live.current is not None
    assert live.current.fingerprint == "second"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("no", False), ("", False)],
)
def test_switch_reads_on_and_off(text: str, expected: bool) -> None:
    """CHECKPOINT_REST_REFLECT accepts the usual spellings of on and off."""
    assert switch(text) is expected


def test_switch_refuses_anything_else() -> None:
    """A value that is neither on nor off is a usage error, not silently off."""
    with pytest.raises(argparse.ArgumentTypeError):
        switch("maybe")


def test_reflect_flag_alone_turns_reflection_on() -> None:
    """`--reflect` with no value is on; without it, off (the default)."""
    assert build_parser().parse_args(["--reflect"]).reflect is True
    assert build_parser().parse_args([]).reflect is False


def test_reflect_and_a_descriptor_set_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both sources at once is a usage error (exit 2) naming both flags."""
    with pytest.raises(SystemExit) as exited:
        bridge_main(["--reflect", "--descriptor-set", "x.binpb"])
    assert exited.value.code == 2
    assert "--reflect and --descriptor-set" in capsys.readouterr().err


async def test_unexpected_load_error_is_recorded_and_following_goes_on() -> None:
    """A load that raises something unforeseen is logged and recorded; the next one still runs."""
    results: list[Exception | Schema] = [RuntimeError("boom"), SECOND]
    swapped = asyncio.Event()

    async def load() -> Schema:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        swapped.set()
        return result

    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        live = LiveSchema(channel)
        live.load(FIRST)
        follower = SchemaFollower(live, load, "test")
        await follower.refresh("first")
        assert live.error == "cannot load the schema from test: unexpected error"
        task = asyncio.create_task(follower.run())
        try:
            follower.trigger("again")
            await asyncio.wait_for(swapped.wait(), 5)  # set just before offer, same step
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert live.current is not None
    assert live.current.fingerprint == "second"
    assert live.error == ""
