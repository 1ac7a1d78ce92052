"""Checkpoint values and the rules they obey: names, lookups, resources, the state machine.

Pure functions only, shared by every store and by the servicer (api-contract.md, "The resource"
and "Looking a checkpoint up").
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from server.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument

_T = TypeVar("_T")

MAX_NAME_LENGTH = 128
# SQLite and PostgreSQL integers are signed 64-bit; larger uint64 values are refused, not wrapped.
MAX_MEMORY_MIB = 2**63 - 1
MAX_VCPUS = 2**32 - 1

_UUID_FORM = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class State(enum.Enum):
    """Lifecycle state; the value is the lowercase name the REST API shows."""

    CREATING = "creating"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"


# The only moves allowed; anything else is FAILED_PRECONDITION (api-contract.md).
TRANSITIONS: dict[State, frozenset[State]] = {
    State.CREATING: frozenset({State.READY, State.FAILED}),
    State.READY: frozenset({State.DELETING}),
    State.FAILED: frozenset({State.DELETING}),
    State.DELETING: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Resources:
    limit_memory_mib: int
    request_memory_mib: int
    request_vcpus: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: str
    display_name: str
    resources: Resources
    state: State
    create_time: datetime
    update_time: datetime
    version: int
    """Bumped by every write; the etag is derived from it."""

    @property
    def etag(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True, slots=True)
class ById:
    """A lookup by canonical (lowercase) UUID."""

    id: str


@dataclass(frozen=True, slots=True)
class ByName:
    """A lookup by exact display name."""

    display_name: str


Lookup = ById | ByName


def is_uuid_form(value: str) -> bool:
    """True when value has the canonical hyphenated 8-4-4-4-12 form, in any letter case."""
    return _UUID_FORM.fullmatch(value) is not None


def name_problem(value: str) -> str | None:
    """Why value cannot be a display name (ignoring the UUID-form rule), or None if it can."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if "/" in value:
        return 'must not contain "/"'
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return "must not contain control characters"
    if value != value.strip():
        return "must not start or end with white space"
    return None


def parse_lookup(raw: str, field: str = "checkpoint_id") -> Lookup:
    """Classify a checkpoint_id as a UUID lookup or a display-name lookup.

    Raises:
        InvalidArgument: the value can be neither an id nor a display name.
    """
    if is_uuid_form(raw):
        return ById(raw.lower())
    problem = name_problem(raw)
    if problem is not None:
        raise InvalidArgument.for_field(field, problem)
    return ByName(raw)


def describe(lookup: Lookup) -> str:
    """How a lookup reads in a human message, quoted like the contract's example."""
    value = lookup.id if isinstance(lookup, ById) else lookup.display_name
    return f'checkpoint "{value}"'


def validate_display_name(value: str, field: str = "display_name") -> list[FieldViolation]:
    """The violations of the display-name rules, empty when the name is valid."""
    problem = name_problem(value)
    if problem is None and is_uuid_form(value):
        problem = "must not have the form of a UUID"
    return [] if problem is None else [FieldViolation(field, problem)]


def validate_resources(resources: Resources, prefix: str = "resources") -> list[FieldViolation]:
    """The violations of the resource rules, empty when the resources are valid."""
    out: list[FieldViolation] = []
    req, lim, cpus = (
        resources.request_memory_mib,
        resources.limit_memory_mib,
        resources.request_vcpus,
    )
    if req < 1:
        out.append(FieldViolation(f"{prefix}.requests.memory_mib", "must be at least 1"))
    elif req > MAX_MEMORY_MIB:
        out.append(
            FieldViolation(f"{prefix}.requests.memory_mib", f"must be at most {MAX_MEMORY_MIB}")
        )
    if lim > MAX_MEMORY_MIB:
        out.append(
            FieldViolation(f"{prefix}.limits.memory_mib", f"must be at most {MAX_MEMORY_MIB}")
        )
    elif lim < req:
        out.append(
            FieldViolation(
                f"{prefix}.limits.memory_mib",
                f"must be at least resources.requests.memory_mib ({req})",
            )
        )
    if cpus < 1:
        out.append(FieldViolation(f"{prefix}.requests.vcpus", "must be at least 1"))
    elif cpus > MAX_VCPUS:
        out.append(FieldViolation(f"{prefix}.requests.vcpus", f"must be at most {MAX_VCPUS}"))
    return out


def raise_if_invalid(violations: Iterable[FieldViolation]) -> None:
    """Raise one InvalidArgument that lists every violation, if there are any.

    Raises:
        InvalidArgument: at least one violation was given.
    """
    found = list(violations)
    if found:
        message = "; ".join(f"{v.field}: {v.description}" for v in found)
        raise InvalidArgument(f"invalid checkpoint: {message}", found)


def check_transition(current: State, new: State) -> None:
    """Refuse a state move the machine does not allow; staying put is not a move.

    Raises:
        FailedPrecondition: the move is not in TRANSITIONS.
    """
    if new is not current and new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none"
        raise FailedPrecondition(
            f"cannot move a checkpoint from {current.value} to {new.value} "
            f"(allowed from {current.value}: {allowed})"
        )


@dataclass(frozen=True, slots=True)
class Patch:
    """The fields an update sets; None means "leave as is"."""

    display_name: str | None = None
    limit_memory_mib: int | None = None
    request_memory_mib: int | None = None
    request_vcpus: int | None = None
    state: State | None = None
    expected_etag: str = ""


def apply_patch(current: Checkpoint, patch: Patch, now: datetime) -> Checkpoint:
    """The checkpoint after patch, validated as a whole; the caller stores it.

    Raises:
        Aborted: the patch names an etag that is not the current one.
        InvalidArgument: the result breaks a field rule.
        FailedPrecondition: the state move is not allowed.
    """
    check_etag(current, patch.expected_etag)
    res = current.resources
    resources = Resources(
        limit_memory_mib=_pick(patch.limit_memory_mib, res.limit_memory_mib),
        request_memory_mib=_pick(patch.request_memory_mib, res.request_memory_mib),
        request_vcpus=_pick(patch.request_vcpus, res.request_vcpus),
    )
    violations = validate_resources(resources)
    if patch.display_name is not None:
        violations += validate_display_name(patch.display_name)
    raise_if_invalid(violations)
    state = current.state if patch.state is None else patch.state
    check_transition(current.state, state)
    return replace(
        current,
        display_name=_pick(patch.display_name, current.display_name),
        resources=resources,
        state=state,
        update_time=now,
        version=current.version + 1,
    )


def same_content(a: Checkpoint, b: Checkpoint) -> bool:
    """True when two versions agree on everything a user sets (name, resources, state)."""
    return (a.display_name, a.resources, a.state) == (b.display_name, b.resources, b.state)


def check_etag(current: Checkpoint, expected: str) -> None:
    """Refuse a write whose etag (when given) is not the stored one.

    Raises:
        Aborted: expected is set and differs from current.etag.
    """
    if expected and expected != current.etag:
        raise Aborted(
            f"etag {expected!r} does not match the current etag of checkpoint "
            f'"{current.id}"; read it again and retry'
        )


def _pick(new: _T | None, old: _T) -> _T:
    return old if new is None else new
