"""Unit tests of rest_bridge.routes: routes from HTTP rules, matching, 405s and collisions."""

from __future__ import annotations

import pytest

from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from rest_bridge.http_rule import PathDecodeError
from rest_bridge.routes import Match, RouteError, RouteTable, build_routes
from tests.rest_bridge.protos import Rpc, rule, service_schema

# From api-contract.md ("gRPC"): each CheckpointService method's HTTP rule.
EXPECTED_ROUTES = {
    ("GET", "/v1/checkpoints/{checkpoint_id}", "", "checkpoint", "GetCheckpoint"),
    ("GET", "/v1/checkpoints", "", "", "ListCheckpoints"),
    ("POST", "/v1/checkpoints", "checkpoint", "checkpoint", "CreateCheckpoint"),
    ("PATCH", "/v1/checkpoints/{checkpoint_id}", "checkpoint", "checkpoint", "UpdateCheckpoint"),
    ("DELETE", "/v1/checkpoints/{checkpoint_id}", "", "checkpoint", "DeleteCheckpoint"),
    ("GET", "/v1/checkpoints:watch", "", "", "WatchCheckpoints"),
}


@pytest.fixture(scope="module")
def table() -> RouteTable:
    """The route table of the shipped checkpoint.v1 descriptor set."""
    return build_routes(load_schema(default_descriptor_set()))


def test_checkpoint_routes(table: RouteTable) -> None:
    """The shipped descriptors give exactly the contract's five routes and the watch."""
    assert {
        (r.http_method, r.template.source, r.body, r.response_body, r.rpc.name)
        for r in table.routes
    } == EXPECTED_ROUTES
    assert {r.grpc_path for r in table.routes} == {
        f"/checkpoint.v1.CheckpointService/{name}" for *_, name in EXPECTED_ROUTES
    }


@pytest.mark.parametrize(
    ("method", "path", "rpc", "params"),
    [
        pytest.param("GET", "/v1/checkpoints", "ListCheckpoints", {}, id="list"),
        pytest.param("POST", "/v1/checkpoints", "CreateCheckpoint", {}, id="create"),
        pytest.param(
            "GET",
            "/v1/checkpoints/my%20box",
            "GetCheckpoint",
            {"checkpoint_id": "my box"},
            id="get",
        ),
        pytest.param(
            "PATCH",
            "/v1/checkpoints/a%2Fb",
            "UpdateCheckpoint",
            {"checkpoint_id": "a/b"},
            id="update-encoded-slash",
        ),
        pytest.param(
            "DELETE", "/v1/checkpoints/x", "DeleteCheckpoint", {"checkpoint_id": "x"}, id="delete"
        ),
    ],
)
def test_match(table: RouteTable, method: str, path: str, rpc: str, params: dict[str, str]) -> None:
    """Method and raw path select the route and its decoded path values."""
    found = table.match(method, path)
    assert isinstance(found, Match)
    assert found.route.rpc.name == rpc
    assert found.params == params


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("PUT", "/v1/checkpoints/x", ["DELETE", "GET", "HEAD", "PATCH"], id="item"),
        pytest.param(
            "POST", "/v1/checkpoints/x", ["DELETE", "GET", "HEAD", "PATCH"], id="item-post"
        ),
        pytest.param("DELETE", "/v1/checkpoints", ["GET", "HEAD", "POST"], id="collection"),
    ],
)
def test_wrong_method_lists_allowed(
    table: RouteTable, method: str, path: str, allowed: list[str]
) -> None:
    """A known path with the wrong method answers every allowed method, sorted, HEAD with GET."""
    assert table.match(method, path) == allowed


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/v1/checkpoints/", id="trailing-slash-collection"),
        pytest.param("/v1/checkpoints/x/", id="trailing-slash-item"),
        pytest.param("/v1/checkpoints/x/y", id="too-deep"),
        pytest.param("/v2/checkpoints", id="other-version"),
        pytest.param("/", id="root"),
    ],
)
def test_unknown_path(table: RouteTable, path: str) -> None:
    """A path no rule describes matches nothing (a trailing slash is another path)."""
    assert table.match("GET", path) is None


def test_match_invalid_utf8(table: RouteTable) -> None:
    """A path value that is not UTF-8 raises PathDecodeError."""
    with pytest.raises(PathDecodeError):
        table.match("GET", "/v1/checkpoints/%FF")


# -- rules of a test service ------------------------------------------------------------------


def test_allow_lists_all_methods_of_a_path() -> None:
    """Allow names every method bound to the path, custom verbs and additional bindings too."""
    get = rule("get", "/v1/{name}")
    get.additional_bindings.add(put="/v1/{name}", body="*")
    table = build_routes(
        service_schema(
            [
                Rpc("Get", get),
                Rpc("Del", rule("delete", "/v1/{id}")),
                Rpc("Head", rule("HEAD", "/v1/{name}")),
            ]
        )
    )
    assert table.match("POST", "/v1/x") == ["DELETE", "GET", "HEAD", "PUT"]
    found = table.match("PUT", "/v1/x")
    assert isinstance(found, Match)
    assert (found.route.rpc.name, found.route.body) == ("Get", "*")


def test_allow_merges_overlapping_shapes() -> None:
    """Methods of different templates that both match the path are all allowed."""
    table = build_routes(
        service_schema(
            [
                Rpc("Get", rule("get", "/v1/{name}")),
                Rpc("Post", rule("post", "/v1/{name=**}", body="*")),
            ]
        )
    )
    assert table.match("DELETE", "/v1/x") == ["GET", "HEAD", "POST"]
    assert table.match("DELETE", "/v1/x/y") == ["POST"]
    assert table.match("HEAD", "/v1/x/y") == ["POST"]
    assert table.methods("/v1/x") == ["GET", "HEAD", "POST"]
    assert table.methods("/v2/x") == []


def test_more_specific_route_wins() -> None:
    """A literal segment beats a variable, and a verb beats no verb."""
    table = build_routes(
        service_schema(
            [
                Rpc("ByName", rule("get", "/v1/{name}")),
                Rpc("Special", rule("get", "/v1/special")),
                Rpc("Cancel", rule("post", "/v1/{name}:cancel", body="*")),
                Rpc("Create", rule("post", "/v1/{name}", body="*")),
            ]
        )
    )
    for method, path, rpc in [
        ("GET", "/v1/special", "Special"),
        ("GET", "/v1/other", "ByName"),
        ("POST", "/v1/op:cancel", "Cancel"),
        ("POST", "/v1/op", "Create"),
    ]:
        found = table.match(method, path)
        assert isinstance(found, Match)
        assert found.route.rpc.name == rpc


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(rule("get", "/v1/{name}"), rule("get", "/v1/{id}"), id="same-shape"),
        pytest.param(rule("get", "/v1/{name}"), rule("get", "/v1/*"), id="variable-vs-star"),
        pytest.param(
            rule("post", "/v1/{name}:run", body="*"),
            rule("post", "/v1/{id}:run", body="*"),
            id="same-verb",
        ),
    ],
)
def test_collision_names_both_methods(first: object, second: object) -> None:
    """Two rules matching the same requests are refused at start-up, naming both methods."""
    with pytest.raises(RouteError) as caught:
        build_routes(service_schema([Rpc("First", first), Rpc("Second", second)]))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "collide" in message
    assert "routetest.TestService.First" in message
    assert "routetest.TestService.Second" in message


def test_same_shape_other_method_is_no_collision() -> None:
    """The same path with different HTTP methods is fine."""
    table = build_routes(
        service_schema(
            [Rpc("Get", rule("get", "/v1/{name}")), Rpc("Del", rule("delete", "/v1/{name}"))]
        )
    )
    assert len(table.routes) == 2


@pytest.mark.parametrize(
    ("rpc", "problem"),
    [
        pytest.param(
            Rpc("M", rule("get", "/v1/{missing}")), "path variable missing must name", id="no-field"
        ),
        pytest.param(
            Rpc("M", rule("get", "/v1/{shelf}")), "path variable shelf must name", id="message"
        ),
        pytest.param(
            Rpc("M", rule("get", "/v1/{tags}")), "path variable tags must name", id="repeated"
        ),
        pytest.param(
            Rpc("M", rule("post", "/v1/x", body="nope")), "body 'nope' is not", id="bad-body"
        ),
        pytest.param(
            Rpc("M", rule("get", "/v1/x", response_body="nope")),
            "response_body 'nope' is not",
            id="bad-response-body",
        ),
        pytest.param(Rpc("M", rule("get", "/v1//x")), "'/v1//x'", id="bad-template"),
        pytest.param(Rpc("M", rule("get", "/healthz")), "reserved by the bridge", id="reserved"),
        pytest.param(
            Rpc("M", rule("get", "/v1/x"), streaming=True), "client streaming", id="streaming"
        ),
    ],
)
def test_unservable_rules_are_refused(rpc: Rpc, problem: str) -> None:
    """A rule the bridge cannot serve is refused at start-up, naming the method and problem."""
    with pytest.raises(RouteError) as caught:
        build_routes(service_schema([rpc]))
    assert "routetest.TestService.M" in str(caught.value)
    assert problem in str(caught.value)


def test_nested_path_variable() -> None:
    """A path variable may name a field of a nested message."""
    table = build_routes(service_schema([Rpc("M", rule("get", "/v1/{shelf.name=shelves/*}"))]))
    found = table.match("GET", "/v1/shelves/s1")
    assert isinstance(found, Match)
    assert found.params == {"shelf.name": "shelves/s1"}


def test_method_without_rule_is_not_routed() -> None:
    """A method without a google.api.http rule gets no route."""
    schema = service_schema([Rpc("M", rule("get", "/v1/x")), Rpc("Internal", None)])
    assert [m.name for m in schema.services[0].methods] == ["M", "Internal"]
    assert schema.http_rule(schema.services[0].methods_by_name["Internal"]) is None
    assert [r.rpc.name for r in build_routes(schema).routes] == ["M"]
