"""Unit tests of rest_bridge.request_mapping: HTTP path, query and body into the request message."""

from __future__ import annotations

from typing import Any

import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from google.protobuf import message

from rest_bridge.codec import Codec, DecodeError
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.request_mapping import parse_json, to_request
from rest_bridge.routes import Route, RouteTable, build_routes
from tests.rest_bridge.protos import Rpc, rule, service_schema

Query = list[tuple[str, str]]


@pytest.fixture(scope="module")
def table() -> RouteTable:
    """The route table of the shipped checkpoint.v1 descriptor set."""
    return build_routes(load_schema(default_descriptor_set()))


@pytest.fixture
def codec() -> Codec:
    """A fresh codec."""
    return Codec()


def _route(table: RouteTable, rpc: str) -> Route:
    [found] = [r for r in table.routes if r.rpc.name == rpc]
    return found


def _call(
    table: RouteTable,
    codec: Codec,
    rpc: str,
    path: dict[str, str] | None = None,
    *,
    query: Query | None = None,
    body: bytes = b"",
) -> Any:
    """The request message for rpc, as a generated checkpoint.v1 message for easy comparison."""
    route = _route(table, rpc)
    built = to_request(route, codec, path or {}, query or [], body)
    generated: type[message.Message] = getattr(svc, route.rpc.input_type.name)
    return generated.FromString(built.SerializeToString())


def _fails(
    table: RouteTable,
    codec: Codec,
    rpc: str,
    path: dict[str, str] | None = None,
    *,
    query: Query | None = None,
    body: bytes = b"",
) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        to_request(_route(table, rpc), codec, path or {}, query or [], body)
    return caught.value


# -- Get --------------------------------------------------------------------------------------


def test_get_path_value(table: RouteTable, codec: Codec) -> None:
    """The path variable fills checkpoint_id as given (already decoded once by the matcher)."""
    request = _call(table, codec, "GetCheckpoint", {"checkpoint_id": "my box"})
    assert request == svc.GetCheckpointRequest(checkpoint_id="my box")


def test_get_unknown_query_param(table: RouteTable, codec: Codec) -> None:
    """An unknown query parameter is refused, naming it."""
    error = _fails(table, codec, "GetCheckpoint", {"checkpoint_id": "x"}, query=[("verbose", "1")])
    assert str(error) == "unknown query parameter 'verbose'"
    assert error.field == "verbose"


def test_get_query_param_bound_by_path(table: RouteTable, codec: Codec) -> None:
    """A query parameter for a field the path already sets is refused."""
    error = _fails(
        table, codec, "GetCheckpoint", {"checkpoint_id": "x"}, query=[("checkpoint_id", "y")]
    )
    assert "is set by the path" in str(error)


# -- List -------------------------------------------------------------------------------------


def test_list_query_params(table: RouteTable, codec: Codec) -> None:
    """page_size, page_token and state come from the query string."""
    request = _call(
        table,
        codec,
        "ListCheckpoints",
        query=[("page_size", "3"), ("page_token", "abc"), ("state", "ready")],
    )
    assert request == svc.ListCheckpointsRequest(
        page_size=3, page_token="abc", state=pb.CHECKPOINT_STATE_READY
    )


def test_list_accepts_json_names(table: RouteTable, codec: Codec) -> None:
    """lowerCamelCase parameter names are accepted too."""
    request = _call(table, codec, "ListCheckpoints", query=[("pageSize", "7")])
    assert request.page_size == 7


def test_list_singular_param_given_twice(table: RouteTable, codec: Codec) -> None:
    """A singular field given twice in the query string is refused."""
    error = _fails(table, codec, "ListCheckpoints", query=[("page_size", "1"), ("page_size", "2")])
    assert str(error) == "query parameter 'page_size' is given more than once"
    assert error.field == "page_size"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param(
            [("page_size", "abc")],
            "query parameter page_size: must be an integer from -2147483648 to 2147483647",
            id="page-size-not-number",
        ),
        pytest.param(
            [("page_size", "2147483648")],
            "query parameter page_size: must be an integer",
            id="page-size-over-int32",
        ),
        pytest.param(
            [("state", "REDDY")],
            "query parameter state: must be one of creating, ready, failed, deleting",
            id="state-unknown-name",
        ),
        pytest.param([("filter", "x")], "unknown query parameter 'filter'", id="unknown"),
    ],
)
def test_list_bad_query_value(table: RouteTable, codec: Codec, query: Query, message: str) -> None:
    """A query value that does not parse as its field's type is refused naming the field."""
    assert str(_fails(table, codec, "ListCheckpoints", query=query)).startswith(message)


# -- Create -----------------------------------------------------------------------------------


def test_create_body_fills_checkpoint(table: RouteTable, codec: Codec) -> None:
    """body: "checkpoint" means the JSON body is the checkpoint, 64-bit numbers as numbers or
    strings."""
    body = (
        b'{"display_name": "box", "resources": {"limits": {"memory_mib": "2048"},'
        b' "requests": {"memory_mib": 1024, "vcpus": 2}}}'
    )
    request = _call(table, codec, "CreateCheckpoint", body=body)
    assert request.checkpoint.display_name == "box"
    assert request.checkpoint.resources.limits.memory_mib == 2048
    assert request.checkpoint.resources.requests.memory_mib == 1024
    assert request.checkpoint.resources.requests.vcpus == 2


@pytest.mark.parametrize("body", [pytest.param(b"", id="empty"), pytest.param(b"  \n", id="blank")])
def test_create_empty_body_leaves_checkpoint_unset(
    table: RouteTable, codec: Codec, body: bytes
) -> None:
    """An empty body sets nothing (the server then says the checkpoint is required)."""
    assert not _call(table, codec, "CreateCheckpoint", body=body).HasField("checkpoint")


@pytest.mark.parametrize(
    ("body", "message", "field"),
    [
        pytest.param(b"{", "request body is not valid JSON", "", id="malformed"),
        pytest.param(b"\xff", "request body is not valid JSON", "", id="not-utf8"),
        pytest.param(
            b'{"display_name": "x", "colour": 1}',
            "checkpoint.colour: unknown field",
            "checkpoint.colour",
            id="unknown-field",
        ),
        pytest.param(
            b'{"resources": {"requests": {"vcpus": -1}}}',
            "checkpoint.resources.requests.vcpus: must be an integer from 0 to 4294967295",
            "checkpoint.resources.requests.vcpus",
            id="negative-vcpus",
        ),
        pytest.param(b"[]", "checkpoint: must be a JSON object", "checkpoint", id="array"),
    ],
)
def test_create_bad_body(
    table: RouteTable, codec: Codec, body: bytes, message: str, field: str
) -> None:
    """A body that is not JSON or does not fit the checkpoint is refused, naming the field path."""
    error = _fails(table, codec, "CreateCheckpoint", body=body)
    assert str(error).startswith(message)
    assert error.field == field


def test_create_query_param_for_body_field(table: RouteTable, codec: Codec) -> None:
    """A query parameter inside the body field is refused: the body sets it."""
    error = _fails(
        table,
        codec,
        "CreateCheckpoint",
        query=[("checkpoint.display_name", "x")],
        body=b'{"display_name": "y"}',
    )
    assert "is set by the request body" in str(error)


# -- Update -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        pytest.param(b'{"display_name": "n"}', ["display_name"], id="name"),
        pytest.param(b'{"displayName": "n"}', ["display_name"], id="json-name"),
        pytest.param(b'{"state": "ready"}', ["state"], id="state"),
        pytest.param(
            b'{"resources": {"requests": {"vcpus": 4}}}',
            ["resources.requests.vcpus"],
            id="nested-leaf",
        ),
        pytest.param(
            b'{"display_name": "n", "resources": {"limits": {"memory_mib": 9},'
            b' "requests": {"memory_mib": 1}}}',
            ["display_name", "resources.limits.memory_mib", "resources.requests.memory_mib"],
            id="several",
        ),
        pytest.param(b'{"resources": {}}', ["resources"], id="empty-object-is-whole-field"),
        pytest.param(b"{}", [], id="empty-body"),
    ],
)
def test_patch_infers_update_mask(
    table: RouteTable, codec: Codec, body: bytes, paths: list[str]
) -> None:
    """Without update_mask, a PATCH's mask is the JSON keys present, as leaf paths."""
    request = _call(table, codec, "UpdateCheckpoint", {"checkpoint_id": "box"}, body=body)
    assert request.checkpoint_id == "box"
    assert request.HasField("update_mask")
    assert list(request.update_mask.paths) == paths


def test_patch_explicit_mask_wins(table: RouteTable, codec: Codec) -> None:
    """An update_mask in the query string is kept, not replaced by an inferred one."""
    request = _call(
        table,
        codec,
        "UpdateCheckpoint",
        {"checkpoint_id": "box"},
        query=[("update_mask", "state")],
        body=b'{"display_name": "n", "state": "ready"}',
    )
    assert list(request.update_mask.paths) == ["state"]
    assert request.checkpoint.display_name == "n"


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        pytest.param("display_name", ["display_name"], id="snake-case"),
        pytest.param(
            "display_name,resources.requests.memory_mib",
            ["display_name", "resources.requests.memory_mib"],
            id="snake-case-list",
        ),
        pytest.param("displayName", ["display_name"], id="camel-case"),
    ],
)
def test_patch_query_mask_takes_proto_names(
    table: RouteTable, codec: Codec, text: str, paths: list[str]
) -> None:
    """update_mask in the query accepts the proto field names the contract uses everywhere
    (display_name, resources.requests.memory_mib), as grpc-gateway does."""
    request = _call(
        table,
        codec,
        "UpdateCheckpoint",
        {"checkpoint_id": "box"},
        query=[("update_mask", text)],
        body=b'{"display_name": "n"}',
    )
    assert list(request.update_mask.paths) == paths


def test_patch_without_body_infers_nothing(table: RouteTable, codec: Codec) -> None:
    """A PATCH with no body leaves update_mask unset (the server says nothing is updated)."""
    request = _call(table, codec, "UpdateCheckpoint", {"checkpoint_id": "box"})
    assert not request.HasField("update_mask")
    assert not request.HasField("checkpoint")


# -- Delete -----------------------------------------------------------------------------------


def test_delete_path_and_etag(table: RouteTable, codec: Codec) -> None:
    """DELETE takes checkpoint_id from the path and etag from the query string."""
    request = _call(
        table, codec, "DeleteCheckpoint", {"checkpoint_id": "box"}, query=[("etag", "v3")]
    )
    assert request == svc.DeleteCheckpointRequest(checkpoint_id="box", etag="v3")


# -- other rule shapes (a test service) -------------------------------------------------------


@pytest.fixture(scope="module")
def test_table() -> RouteTable:
    """Routes of a test service: body "*", a repeated field, an int64 path variable."""
    return build_routes(
        service_schema(
            [
                Rpc("Put", rule("put", "/v1/{name}", body="*")),
                Rpc("Get", rule("get", "/v1/{name}")),
                Rpc("ById", rule("get", "/v1/items/{id}")),
            ]
        )
    )


def test_body_star_fills_request(test_table: RouteTable, codec: Codec) -> None:
    """body "*" fills the whole request from JSON; the path value overrides the body's."""
    route = _route(test_table, "Put")
    request: Any = to_request(
        route, codec, {"name": "from-path"}, [], b'{"name": "from-body", "tags": ["a"], "id": "5"}'
    )
    assert (request.name, list(request.tags), request.id) == ("from-path", ["a"], 5)


def test_body_star_forbids_query_params(test_table: RouteTable, codec: Codec) -> None:
    """With body "*", any query parameter is refused, even a valid field name."""
    with pytest.raises(DecodeError) as caught:
        to_request(_route(test_table, "Put"), codec, {"name": "x"}, [("id", "1")], b"{}")
    assert str(caught.value).startswith("unknown query parameter 'id'")
    assert "takes all of its fields from the request body" in str(caught.value)


def test_repeated_query_param(test_table: RouteTable, codec: Codec) -> None:
    """A repeated field takes every value given for it, in order; nested fields by dotted name."""
    request: Any = to_request(
        _route(test_table, "Get"),
        codec,
        {"name": "x"},
        [("tags", "a"), ("shelf.name", "s"), ("tags", "b")],
        b"",
    )
    assert list(request.tags) == ["a", "b"]
    assert request.shelf.name == "s"


def test_query_param_naming_a_message(test_table: RouteTable, codec: Codec) -> None:
    """A query parameter that names a whole message is refused with a hint."""
    with pytest.raises(DecodeError, match=r"is a message; name one of its fields"):
        to_request(_route(test_table, "Get"), codec, {"name": "x"}, [("shelf", "s")], b"")


def test_bad_path_value(test_table: RouteTable, codec: Codec) -> None:
    """A path value that does not parse as its field's type is refused as a path value."""
    with pytest.raises(DecodeError) as caught:
        to_request(_route(test_table, "ById"), codec, {"id": "abc"}, [], b"")
    assert str(caught.value).startswith("path value id: must be an integer")
    assert caught.value.field == "id"


def test_parse_json_depth() -> None:
    """Absurdly deep JSON is a DecodeError, not a crash."""
    with pytest.raises(DecodeError):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
