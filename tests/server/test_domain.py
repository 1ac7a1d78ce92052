"""Unit tests of server.domain: lookups, name and resource rules, the state machine, patches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.domain import (
    MAX_MEMORY_MIB,
    MAX_VCPUS,
    TRANSITIONS,
    ById,
    ByName,
    Checkpoint,
    Patch,
    Resources,
    State,
    apply_patch,
    check_transition,
    describe,
    is_uuid_form,
    parse_lookup,
    raise_if_invalid,
    validate_display_name,
    validate_resources,
)
from server.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument

UUID_LOWER = "0b7e4c1a-3f2d-4e5a-9b8c-7d6e5f4a3b2c"
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def _checkpoint(state: State = State.CREATING, version: int = 3, name: str = "box") -> Checkpoint:
    return Checkpoint(
        id=UUID_LOWER,
        display_name=name,
        resources=Resources(limit_memory_mib=2048, request_memory_mib=1024, request_vcpus=2),
        state=state,
        create_time=T0,
        update_time=T0,
        version=version,
    )


# -- parse_lookup -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(UUID_LOWER, ById(UUID_LOWER), id="uuid-lower"),
        pytest.param(UUID_LOWER.upper(), ById(UUID_LOWER), id="uuid-upper"),
        pytest.param(
            "0B7e4C1a-3F2d-4E5a-9B8c-7D6e5F4a3B2c", ById(UUID_LOWER), id="uuid-mixed-case"
        ),
        pytest.param("my box", ByName("my box"), id="name-with-space"),
        pytest.param("example", ByName("example"), id="plain-name"),
        pytest.param("x" * 128, ByName("x" * 128), id="name-128-chars"),
        pytest.param("caf\u00e9 \u2603", ByName("caf\u00e9 \u2603"), id="name-unicode"),
        pytest.param(
            "0b7e4c1a3f2d4e5a9b8c7d6e5f4a3b2c",
            ByName("0b7e4c1a3f2d4e5a9b8c7d6e5f4a3b2c"),
            id="unhyphenated-uuid-is-a-name",
        ),
        pytest.param(
            "{" + UUID_LOWER + "}", ByName("{" + UUID_LOWER + "}"), id="braced-uuid-is-a-name"
        ),
    ],
)
def test_parse_lookup_classifies_ids_and_names(raw: str, expected: ById | ByName) -> None:
    """A canonical-form UUID (any case) is a lowercased id lookup; anything else valid is a name."""
    assert parse_lookup(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("x" * 129, "at most 128 characters (got 129)", id="over-long-129"),
        pytest.param("a/b", 'must not contain "/"', id="slash"),
        pytest.param("/", 'must not contain "/"', id="only-slash"),
        pytest.param("a\x00b", "control characters", id="nul"),
        pytest.param("a\nb", "control characters", id="newline"),
        pytest.param("a\x7fb", "control characters", id="del"),
        pytest.param(" box", "white space", id="leading-space"),
        pytest.param("box ", "white space", id="trailing-space"),
        pytest.param("\tbox", "control characters", id="leading-tab"),
    ],
)
def test_parse_lookup_refuses_invalid_input(raw: str, problem: str) -> None:
    """Empty, over-long, slash, control-character or space-padded input is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument) as caught:
        parse_lookup(raw)
    assert problem in caught.value.message
    assert caught.value.message.startswith("checkpoint_id: ")
    assert [v.field for v in caught.value.violations] == ["checkpoint_id"]


def test_parse_lookup_names_the_given_field() -> None:
    """The violation names the field the caller passes, not always checkpoint_id."""
    with pytest.raises(InvalidArgument) as caught:
        parse_lookup("", field="name")
    assert caught.value.violations == (FieldViolation("name", "must not be empty"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(UUID_LOWER, True, id="lower"),
        pytest.param(UUID_LOWER.upper(), True, id="upper"),
        pytest.param(UUID_LOWER[:-1], False, id="short"),
        pytest.param(UUID_LOWER + "0", False, id="long"),
        pytest.param(UUID_LOWER.replace("0", "g"), False, id="non-hex"),
        pytest.param(UUID_LOWER.replace("-", ""), False, id="no-hyphens"),
        pytest.param(f" {UUID_LOWER}", False, id="padded"),
    ],
)
def test_is_uuid_form(value: str, expected: bool) -> None:
    """Only the exact hyphenated 8-4-4-4-12 hex form counts as a UUID."""
    assert is_uuid_form(value) is expected


@pytest.mark.parametrize(
    ("lookup", "text"),
    [
        pytest.param(ById(UUID_LOWER), f'checkpoint "{UUID_LOWER}"', id="by-id"),
        pytest.param(ByName("x"), 'checkpoint "x"', id="by-name"),
    ],
)
def test_describe_quotes_the_lookup(lookup: ById | ByName, text: str) -> None:
    """A lookup reads as checkpoint "value" in messages, as the contract's example does."""
    assert describe(lookup) == text


# -- validate_display_name --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("a", id="one-char"),
        pytest.param("x" * 128, id="128-chars"),
        pytest.param("my box", id="inner-space"),
        pytest.param("\u00e9t\u00e9", id="unicode"),
    ],
)
def test_validate_display_name_accepts_valid_names(name: str) -> None:
    """A valid display name has no violations."""
    assert validate_display_name(name) == []


@pytest.mark.parametrize(
    ("name", "description"),
    [
        pytest.param("", "must not be empty", id="empty"),
        pytest.param("x" * 129, "must be at most 128 characters (got 129)", id="129-chars"),
        pytest.param("a/b", 'must not contain "/"', id="slash"),
        pytest.param("a\x01", "must not contain control characters", id="control"),
        pytest.param(" a", "must not start or end with white space", id="leading-space"),
        pytest.param("a ", "must not start or end with white space", id="trailing-space"),
        pytest.param(UUID_LOWER, "must not have the form of a UUID", id="uuid-lower"),
        pytest.param(UUID_LOWER.upper(), "must not have the form of a UUID", id="uuid-upper"),
    ],
)
def test_validate_display_name_refuses(name: str, description: str) -> None:
    """Each broken rule, the UUID form included, is one violation naming the field."""
    assert validate_display_name(name, "checkpoint.display_name") == [
        FieldViolation("checkpoint.display_name", description)
    ]


# -- validate_resources -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param(Resources(1, 1, 1), id="minimum"),
        pytest.param(Resources(2048, 1024, 2), id="typical"),
        pytest.param(Resources(MAX_MEMORY_MIB, MAX_MEMORY_MIB, MAX_VCPUS), id="maximum"),
    ],
)
def test_validate_resources_accepts_valid(resources: Resources) -> None:
    """Resources within the contract's rules have no violations."""
    assert validate_resources(resources) == []


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(
            Resources(limit_memory_mib=10, request_memory_mib=0, request_vcpus=1),
            [("resources.requests.memory_mib", "must be at least 1")],
            id="request-memory-zero",
        ),
        pytest.param(
            Resources(limit_memory_mib=512, request_memory_mib=1024, request_vcpus=1),
            [
                (
                    "resources.limits.memory_mib",
                    "must be at least resources.requests.memory_mib (1024)",
                )
            ],
            id="limit-below-request",
        ),
        pytest.param(
            Resources(limit_memory_mib=10, request_memory_mib=1, request_vcpus=0),
            [("resources.requests.vcpus", "must be at least 1")],
            id="vcpus-zero",
        ),
        pytest.param(
            Resources(MAX_MEMORY_MIB + 1, 1, 1),
            [("resources.limits.memory_mib", f"must be at most {MAX_MEMORY_MIB}")],
            id="limit-over-int64",
        ),
        pytest.param(
            Resources(MAX_MEMORY_MIB + 1, MAX_MEMORY_MIB + 1, 1),
            [
                ("resources.requests.memory_mib", f"must be at most {MAX_MEMORY_MIB}"),
                ("resources.limits.memory_mib", f"must be at most {MAX_MEMORY_MIB}"),
            ],
            id="both-over-int64",
        ),
        pytest.param(
            Resources(1, 1, MAX_VCPUS + 1),
            [("resources.requests.vcpus", f"must be at most {MAX_VCPUS}")],
            id="vcpus-over-uint32",
        ),
        pytest.param(
            Resources(0, 0, 0),
            [
                ("resources.requests.memory_mib", "must be at least 1"),
                ("resources.requests.vcpus", "must be at least 1"),
            ],
            id="all-zero",
        ),
    ],
)
def test_validate_resources_refuses(resources: Resources, expected: list[tuple[str, str]]) -> None:
    """Every broken resource rule is reported, each naming its field path."""
    found = validate_resources(resources)
    assert [(v.field, v.description) for v in found] == expected


def test_validate_resources_uses_the_prefix() -> None:
    """The field paths start with the given prefix."""
    found = validate_resources(Resources(1, 1, 0), prefix="checkpoint.resources")
    assert [v.field for v in found] == ["checkpoint.resources.requests.vcpus"]


def test_raise_if_invalid_lists_every_violation() -> None:
    """One InvalidArgument carries all violations, each named in the message."""
    violations = [FieldViolation("a", "is bad"), FieldViolation("b", "is worse")]
    with pytest.raises(InvalidArgument) as caught:
        raise_if_invalid(violations)
    assert caught.value.violations == tuple(violations)
    assert caught.value.message == "invalid checkpoint: a: is bad; b: is worse"


def test_raise_if_invalid_passes_without_violations() -> None:
    """No violations raise nothing."""
    raise_if_invalid([])


# -- the state machine ------------------------------------------------------------------------

C, R, F, D = State.CREATING, State.READY, State.FAILED, State.DELETING

# Copied from api-contract.md ("creating -> ready | failed, ready -> deleting, failed ->
# deleting"); staying in the same state is not a move. True means allowed.
EXPECTED_MOVES: dict[tuple[State, State], bool] = {
    (C, C): True,
    (C, R): True,
    (C, F): True,
    (C, D): False,
    (R, C): False,
    (R, R): True,
    (R, F): False,
    (R, D): True,
    (F, C): False,
    (F, R): False,
    (F, F): True,
    (F, D): True,
    (D, C): False,
    (D, R): False,
    (D, F): False,
    (D, D): True,
}


def test_expected_moves_cover_all_pairs() -> None:
    """The expectation table has every one of the 16 (from, to) pairs."""
    assert set(EXPECTED_MOVES) == {(a, b) for a in State for b in State}
    assert len(EXPECTED_MOVES) == 16


def test_transitions_match_the_contract() -> None:
    """TRANSITIONS holds exactly the contract's forward moves."""
    derived = {(a, b) for (a, b), allowed in EXPECTED_MOVES.items() if allowed and a is not b}
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == derived


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [pytest.param(a, b, ok, id=f"{a.value}-to-{b.value}") for (a, b), ok in EXPECTED_MOVES.items()],
)
def test_check_transition(current: State, new: State, allowed: bool) -> None:
    """Allowed moves pass; every other move is FAILED_PRECONDITION naming both states."""
    if allowed:
        check_transition(current, new)
        return
    with pytest.raises(FailedPrecondition) as caught:
        check_transition(current, new)
    assert f"from {current.value} to {new.value}" in caught.value.message


def test_check_transition_message_lists_allowed_moves() -> None:
    """The refusal says which moves are allowed from the current state."""
    with pytest.raises(FailedPrecondition, match=r"allowed from creating: failed, ready"):
        check_transition(State.CREATING, State.DELETING)
    with pytest.raises(FailedPrecondition, match=r"allowed from deleting: none"):
        check_transition(State.DELETING, State.READY)


# -- apply_patch ------------------------------------------------------------------------------


def test_apply_patch_sets_fields_and_bumps_version() -> None:
    """A patch changes the named fields, the update time and the version, and nothing else."""
    current = _checkpoint()
    later = T0 + timedelta(minutes=5)
    patch = Patch(display_name="renamed", request_vcpus=4, state=State.READY)
    new = apply_patch(current, patch, later)
    assert new.display_name == "renamed"
    assert new.resources == Resources(2048, 1024, 4)
    assert new.state is State.READY
    assert new.update_time == later
    assert new.create_time == T0
    assert new.version == current.version + 1
    assert new.etag == f"v{current.version + 1}"
    assert new.id == current.id


def test_apply_patch_empty_patch_keeps_content() -> None:
    """A patch with no fields keeps the content and still bumps the version."""
    current = _checkpoint()
    new = apply_patch(current, Patch(), T0)
    assert (new.display_name, new.resources, new.state) == (
        current.display_name,
        current.resources,
        current.state,
    )
    assert new.version == current.version + 1


def test_apply_patch_matching_etag_passes() -> None:
    """The current etag lets the write through."""
    current = _checkpoint(version=7)
    new = apply_patch(current, Patch(display_name="n", expected_etag="v7"), T0)
    assert new.display_name == "n"


def test_apply_patch_etag_mismatch_is_aborted() -> None:
    """A stale etag is ABORTED, naming the etag and the checkpoint."""
    current = _checkpoint(version=7)
    with pytest.raises(Aborted) as caught:
        apply_patch(current, Patch(display_name="n", expected_etag="v6"), T0)
    assert "'v6'" in caught.value.message
    assert UUID_LOWER in caught.value.message


def test_apply_patch_refuses_forbidden_state_move() -> None:
    """A state move the machine refuses is FAILED_PRECONDITION."""
    with pytest.raises(FailedPrecondition):
        apply_patch(_checkpoint(state=State.READY), Patch(state=State.CREATING), T0)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param(Patch(display_name=UUID_LOWER), "display_name", id="uuid-name"),
        pytest.param(Patch(display_name=""), "display_name", id="empty-name"),
        pytest.param(Patch(limit_memory_mib=10), "resources.limits.memory_mib", id="limit-low"),
        pytest.param(Patch(request_vcpus=0), "resources.requests.vcpus", id="vcpus-zero"),
    ],
)
def test_apply_patch_validates_the_result(patch: Patch, field: str) -> None:
    """The patched checkpoint is validated as a whole; a broken rule is INVALID_ARGUMENT."""
    with pytest.raises(InvalidArgument) as caught:
        apply_patch(_checkpoint(), patch, T0)
    assert [v.field for v in caught.value.violations] == [field]


def test_apply_patch_checks_limit_against_patched_request() -> None:
    """Raising the request above the stored limit is refused; raising both together passes."""
    with pytest.raises(InvalidArgument):
        apply_patch(_checkpoint(), Patch(request_memory_mib=4096), T0)
    new = apply_patch(_checkpoint(), Patch(request_memory_mib=4096, limit_memory_mib=4096), T0)
    assert new.resources == Resources(4096, 4096, 2)
