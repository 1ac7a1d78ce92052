"""Routes derived from the google.api.http rules of the exposed services, built once at start-up.

Bindings are grouped by path shape and dispatched on the HTTP method inside the group, so a 405
lists every method of the path in Allow. Two bindings that would match the same requests are
refused at start-up with an error naming both methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from google.api import http_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from rest_bridge import docs_ui
from rest_bridge.descriptor_set import Schema
from rest_bridge.descriptors import resolve_field
from rest_bridge.http_rule import PathTemplate, TemplateError, parse_template

RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", *docs_ui.PATHS})
_PATTERNS = ("get", "put", "post", "delete", "patch")


class RouteError(ValueError):
    """A rule the bridge cannot serve, or two rules that collide; the message names the methods."""


@dataclass(frozen=True)
class Route:
    http_method: str
    template: PathTemplate
    body: str
    """"" (no body), "*" (the whole request) or a top-level request field name."""
    response_body: str
    """"" (the whole response) or a top-level response field name."""
    rpc: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]

    @property
    def grpc_path(self) -> str:
        return f"/{self.rpc.containing_service.full_name}/{self.rpc.name}"

    @property
    def body_field(self) -> FieldDescriptor | None:
        if self.body in ("", "*"):
            return None
        return self.rpc.input_type.fields_by_name[self.body]


@dataclass
class _Group:
    shape: str
    routes: dict[str, Route] = field(default_factory=dict)

    @property
    def any_route(self) -> Route:
        return next(iter(self.routes.values()))


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        groups: dict[str, _Group] = {}
        for route in routes:
            shape = route.template.shape
            if shape in RESERVED_PATHS:
                raise RouteError(
                    f"{route.rpc.full_name}: {route.template.source} is reserved by the bridge"
                )
            group = groups.setdefault(shape, _Group(shape))
            clash = group.routes.get(route.http_method)
            if clash is not None:
                raise RouteError(
                    f"HTTP rules collide: {route.http_method} {route.template.source} "
                    f"({route.rpc.full_name}) and {clash.http_method} {clash.template.source} "
                    f"({clash.rpc.full_name})"
                )
            group.routes[route.http_method] = route
        self._groups = sorted(groups.values(), key=lambda g: g.any_route.template.specificity)
        self.routes = [r for g in self._groups for r in g.routes.values()]

    def match(self, http_method: str, raw_path: str) -> Match | list[str] | None:
        """The route and path values for a request; the allowed methods if only the path
        matches; None if nothing does.

        Raises:
            PathDecodeError: a path variable is not valid percent-encoded UTF-8.
        """
        allowed: set[str] = set()
        for group in self._groups:
            route = group.routes.get(http_method)
            if route is not None:
                params = route.template.match(raw_path)
                if params is not None:
                    return Match(route, params)
            elif group.any_route.template.regex.fullmatch(raw_path):
                allowed.update(group.routes)
        return with_head(allowed) or None

    def methods(self, raw_path: str) -> list[str]:
        """Every method bound to the path (HEAD wherever GET is), sorted; [] for no route."""
        bound: set[str] = set()
        for group in self._groups:
            if group.any_route.template.regex.fullmatch(raw_path):
                bound.update(group.routes)
        return with_head(bound)


def with_head(methods: Iterable[str]) -> list[str]:
    """methods, sorted, with HEAD added where GET is: HEAD is served as a GET without a body."""
    found = set(methods)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def build_routes(schema: Schema) -> RouteTable:
    """Every binding (rule and additional_bindings) of every exposed method.

    Raises:
        RouteError: a rule is malformed, names a missing field, or collides with another.
    """
    routes: list[Route] = []
    for service in schema.services:
        for method in service.methods:
            rule = schema.http_rule(method)
            if rule is None:
                continue
            if method.client_streaming:
                raise RouteError(f"{method.full_name}: client streaming cannot be transcoded")
            request_class = schema.message_class(method.input_type)
            response_class = schema.message_class(method.output_type)
            for binding in [rule, *rule.additional_bindings]:
                routes.append(_route(method, binding, request_class, response_class))
    return RouteTable(routes)


def _route(
    method: MethodDescriptor,
    rule: http_pb2.HttpRule,
    request_class: type[Message],
    response_class: type[Message],
) -> Route:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise RouteError(f"{method.full_name}: HTTP rule has no method and path")
    if kind == "custom":
        http_method, source = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, source = kind.upper(), getattr(rule, kind)
    try:
        template = parse_template(source)
    except TemplateError as exc:
        raise RouteError(f"{method.full_name}: {exc}") from exc
    for variable in template.variables:
        fld = resolve_field(method.input_type, variable.field_path)
        if fld is None or fld.is_repeated or fld.type == FieldDescriptor.TYPE_MESSAGE:
            raise RouteError(
                f"{method.full_name}: path variable {variable.field_path} must name a singular "
                "scalar field of the request"
            )
    if rule.body not in ("", "*") and rule.body not in method.input_type.fields_by_name:
        raise RouteError(f"{method.full_name}: body {rule.body!r} is not a request field")
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise RouteError(
            f"{method.full_name}: response_body {rule.response_body!r} is not a response field"
        )
    return Route(
        http_method=http_method,
        template=template,
        body=rule.body,
        response_body=rule.response_body,
        rpc=method,
        request_class=request_class,
        response_class=response_class,
    )
