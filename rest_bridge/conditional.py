"""Conditional requests (RFC 9110 §13) for any resource with an `etag` field (AIP-154).

Generic: each route's plan is found from its descriptors once, so no resource is named here.

- Reads (GET, and HEAD, which the bridge serves as a GET): the answer's resource etag is the
  `ETag` header; `If-Match` that does not match is 412, a matching `If-None-Match` is 304.
- Writes: a single strong `If-Match` tag is put into the request's own etag field (the request
  message's `etag`, e.g. Delete, or for PATCH/PUT the body resource's `etag`, e.g. Update), so
  the server's etag check decides inside the write's own transaction, never read-then-write.
  Only when the tag came from If-Match does the server's etag mismatch (ABORTED with reason
  ETAG_MISMATCH) become 412 failed_precondition. `If-Match: *` sends no etag: any existing
  resource matches, and a missing one is the server's 404 (§13.2.1: preconditions are ignored
  when the answer without them would not be 2xx).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from rest_bridge.descriptors import message_of
from rest_bridge.routes import Route
from rest_bridge.status import ApiError

ETAG_FIELD = "etag"
ETAG_MISMATCH = "ETAG_MISMATCH"
"""The ErrorInfo reason the server gives an etag mismatch (ABORTED)."""
READ_METHODS = frozenset({"GET"})
BODY_RESOURCE_METHODS = frozenset({"PATCH", "PUT"})

_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
_SAFE_TAG = re.compile(r"[\x21\x23-\x7e]+")


@dataclass(frozen=True, slots=True)
class EtagPlan:
    """Where a route's etags live, found once from its descriptors."""

    resource: bool
    """The answer's data is one resource with a string etag field."""
    request_path: tuple[str, ...]
    """Field path of the request's etag that an If-Match fills; () when it has none."""


def plan_for(route: Route) -> EtagPlan:
    """The etag plan of a route, from its request, body and response descriptors."""
    if route.response_body:
        fld = route.rpc.output_type.fields_by_name[route.response_body]
        data = message_of(fld) if _singular_message(fld) else None
    else:
        data = route.rpc.output_type
    path: tuple[str, ...] = ()
    if _etag_field(route.rpc.input_type) is not None:
        path = (ETAG_FIELD,)
    elif route.http_method in BODY_RESOURCE_METHODS and route.body_field is not None:
        body = route.body_field
        if _singular_message(body) and _etag_field(message_of(body)) is not None:
            path = (body.name, ETAG_FIELD)
    return EtagPlan(resource=data is not None and _etag_field(data) is not None, request_path=path)


def _singular_message(fld: FieldDescriptor) -> bool:
    return fld.type == FieldDescriptor.TYPE_MESSAGE and not fld.is_repeated


def _etag_field(desc: Descriptor) -> FieldDescriptor | None:
    fld = desc.fields_by_name.get(ETAG_FIELD)
    if fld is None or fld.type != FieldDescriptor.TYPE_STRING or fld.is_repeated:
        return None
    return fld


@dataclass(frozen=True, slots=True)
class TagList:
    """A parsed If-Match / If-None-Match value: `*`, or (weak, opaque-tag) pairs."""

    star: bool
    tags: tuple[tuple[bool, str], ...]

    def weak_match(self, etag: str) -> bool:
        return self.star or any(tag == etag for _, tag in self.tags)

    def strong_match(self, etag: str) -> bool:
        return self.star or any(not weak and tag == etag for weak, tag in self.tags)


def parse_tags(value: str | None, header: str) -> TagList | None:
    """A header's entity tags (RFC 9110 §8.8.3), None when the header is absent.

    Raises:
        ApiError: not `*` nor a comma list of quoted tags (422, naming the header).
    """
    if value is None:
        return None
    if value.strip() == "*":
        return TagList(star=True, tags=())
    tags: list[tuple[bool, str]] = []
    for part in value.split(","):
        if not part.strip():
            continue
        found = _ENTITY_TAG.fullmatch(part)
        if found is None:
            raise ApiError.invalid(
                f'{header} must be * or quoted entity tags, e.g. "v1" or W/"v1"; got '
                f"{value[:100]!r}",
                header,
            )
        tags.append((found.group(1) is not None, found.group(2)))
    if not tags:
        raise ApiError.invalid(f"{header} is empty", header)
    return TagList(star=False, tags=tuple(tags))


@dataclass(frozen=True, slots=True)
class Conditions:
    """The preconditions of one request and what they did to it."""

    if_match: TagList | None
    if_none_match: TagList | None
    sent_tag: bool = False
    """An If-Match tag went into the request: the server's etag mismatch is then a 412."""

    @classmethod
    def parse(cls, if_match: str | None, if_none_match: str | None) -> Conditions | None:
        """None when the request has no precondition (the common case, kept cheap)."""
        if if_match is None and if_none_match is None:
            return None
        return cls(parse_tags(if_match, "If-Match"), parse_tags(if_none_match, "If-None-Match"))

    def apply(self, route: Route, plan: EtagPlan, request: Message) -> Conditions:
        """Put a write's If-Match tag into the request; the conditions as applied.

        Raises:
            ApiError: a precondition this route cannot honour atomically (422), or an If-Match
                of weak tags only, which strong comparison never matches (412).
        """
        if route.http_method in READ_METHODS:
            return self
        where = f"{route.http_method} {route.template.source}"
        if self.if_none_match is not None:
            raise ApiError.invalid(
                f"If-None-Match is honoured on GET and HEAD only, not on {where}", "If-None-Match"
            )
        if self.if_match is None or (self.if_match.star and plan.request_path):
            return Conditions(None, None)  # nothing left to evaluate on the answer of a write
        if not plan.request_path:
            raise ApiError.invalid(
                f"If-Match is not supported on {where}: its request carries no etag", "If-Match"
            )
        strong = [tag for weak, tag in self.if_match.tags if not weak]
        if not strong:
            raise precondition_failed("If-Match uses strong comparison; a weak tag never matches")
        if len(set(strong)) > 1:
            raise ApiError.invalid("If-Match with more than one entity tag is not supported")
        target: Message = request
        for name in plan.request_path[:-1]:
            target = getattr(target, name)
        current = getattr(target, ETAG_FIELD)
        if current and current != strong[0]:
            raise ApiError.invalid(
                f"If-Match {strong[0]!r} and the request's etag {current!r} differ", "If-Match"
            )
        setattr(target, ETAG_FIELD, strong[0])
        return Conditions(None, None, sent_tag=True)

    def upstream_error(self, error: ApiError) -> ApiError:
        """The server's etag mismatch is 412 when the etag came from If-Match; else unchanged."""
        if (
            self.sent_tag
            and error.code is grpc.StatusCode.ABORTED
            and error.reason == ETAG_MISMATCH
        ):
            return precondition_failed(error.message)
        return error

    def not_modified(self, etag: str) -> bool:
        """Evaluate a read's preconditions on its answer (§13.2.2): 412, or True for a 304.

        Raises:
            ApiError: If-Match does not match the resource's etag (412).
        """
        if self.if_match is not None and not self.if_match.strong_match(etag):
            raise precondition_failed(f"If-Match does not match the current etag {etag!r}")
        return self.if_none_match is not None and self.if_none_match.weak_match(etag)


def precondition_failed(message: str) -> ApiError:
    """412 with code failed_precondition (the table's 409 is for state conflicts)."""
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, http_status=412)


def etag_header(etag: str) -> list[tuple[bytes, bytes]]:
    """The ETag header of a resource's etag; none when the etag cannot be a quoted tag."""
    if not etag or _SAFE_TAG.fullmatch(etag) is None:
        return []
    return [(b"etag", b'"' + etag.encode("ascii") + b'"')]


def resource_etag(plan: EtagPlan, data: Message) -> str:
    """The etag of the answer's resource, "" when the route's answer has none."""
    if not plan.resource:
        return ""
    value: str = getattr(data, ETAG_FIELD)
    return value
