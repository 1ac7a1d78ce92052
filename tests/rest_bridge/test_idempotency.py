"""Unit tests of rest_bridge.idempotency: which routes take the key, how it maps to request_id."""

from __future__ import annotations

import uuid

import pytest
from checkpoint.v1 import checkpoint_service_pb2 as svc

from rest_bridge.codec import DecodeError
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.idempotency import apply_key, keyed_field, replayed, request_id_of
from rest_bridge.routes import Route, build_routes


@pytest.fixture(scope="module")
def routes() -> dict[str, Route]:
    """The shipped routes by RPC name."""
    table = build_routes(load_schema(default_descriptor_set()))
    return {r.rpc.name: r for r in table.routes}


def test_only_a_post_with_a_request_id_string_is_keyed(routes: dict[str, Route]) -> None:
    """CreateCheckpoint (POST, request_id) takes the key; no other route does."""
    keyed = {name for name, route in routes.items() if keyed_field(route) is not None}
    assert keyed == {"CreateCheckpoint"}


def test_a_uuid_key_is_passed_as_is_in_lowercase() -> None:
    """A key that is a UUID is that request_id, so gRPC and REST clients name one request."""
    key = "8E03978E-40D5-43E8-BC93-6894A57F9324"
    assert request_id_of(key) == key.lower()


def test_other_keys_map_to_a_stable_uuid5_and_quotes_are_syntax() -> None:
    """Any other key is a UUID5, the same for the bare and the quoted (sf-string) spelling."""
    mapped = request_id_of("order-42")
    assert uuid.UUID(mapped).version == 5
    assert request_id_of('"order-42"') == mapped
    assert request_id_of(r'"a\"b\\c"') == request_id_of('a"b\\c')
    assert request_id_of("order-43") != mapped


@pytest.mark.parametrize("key", ["", " x", "x ", "k" * 256, "tab\tkey", '"open', r'"\q"'])
def test_invalid_keys_are_refused_naming_the_header(key: str) -> None:
    """Empty, padded, too long, control characters or broken quoting: a DecodeError."""
    with pytest.raises(DecodeError) as raised:
        request_id_of(key)
    assert raised.value.field == "Idempotency-Key"


def test_apply_key_fills_request_id_and_refuses_two_headers(routes: dict[str, Route]) -> None:
    """The header fills request_id; two headers, or a disagreeing request_id, are refused."""
    route = routes["CreateCheckpoint"]
    message = svc.CreateCheckpointRequest()
    assert apply_key(route, message, ["order-42"]) is True
    assert message.request_id == request_id_of("order-42")
    with pytest.raises(DecodeError, match="send one"):
        apply_key(route, svc.CreateCheckpointRequest(), ["a", "b"])
    with pytest.raises(DecodeError, match="different requests"):
        apply_key(route, svc.CreateCheckpointRequest(request_id=str(uuid.uuid4())), ["a"])
    assert apply_key(routes["UpdateCheckpoint"], svc.UpdateCheckpointRequest(), ["a"]) is False


def test_replayed_reads_the_trailing_marker() -> None:
    """Only idempotent-replayed: true marks a replay."""
    assert replayed((("idempotent-replayed", "true"),))
    assert not replayed((("idempotent-replayed", "false"),))
    assert not replayed(None)
