"""`make test` replays every committed fuzz input through its target's one-input function.

Each file under tests/fuzz/corpus/<target>/ is a seed or a named regression (a crash a fuzzer
once found, fixed since); a target raises only on a broken promise (tests/fuzz/targets.py), so
every file must pass through without an exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz import targets
from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(
    (target, path) for target in TARGETS for path in (CORPUS / target).iterdir() if path.is_file()
)


def test_every_target_has_seeds_and_regressions() -> None:
    """Each target has a committed corpus, and the named regressions are in it."""
    for target in TARGETS:
        names = [p.name for t, p in CASES if t == target]
        assert any(n.startswith("seed-") for n in names), target
    assert sum(p.name.startswith("regression-") for _, p in CASES) >= 20


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_corpus_input_keeps_every_promise(target: str, path: Path) -> None:
    """The input passes through its target with no unexpected exception."""
    TARGETS[target](path.read_bytes())


def test_the_app_target_reports_a_5xx(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request the bridge answers with 500 fails the app target (so a fuzzer finds it)."""

    def broken(*args: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr("rest_bridge.transcoder.to_request", broken)
    with pytest.raises(AssertionError, match="500"):
        TARGETS["app"](b"/v1/all\n\n{}\x01")


def test_the_codec_target_reports_an_unexpected_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception other than DecodeError escapes the codec target (so a fuzzer finds it)."""

    def broken(*args: object) -> object:
        raise OverflowError("a bug")

    monkeypatch.setattr("tests.fuzz.targets.parse_json", broken)
    with pytest.raises(OverflowError):
        TARGETS["codec"](b"{}\x0a")


def test_an_expired_client_deadline_is_the_one_allowed_5xx() -> None:
    """regression-zero-grpc-timeout-is-504 (found by the app fuzzer): Grpc-Timeout: 0S is 504
    deadline_exceeded per the status table, which the target allows only when the client set
    that deadline; without the header the same request is a 200."""
    TARGETS["app"]((CORPUS / "app" / "regression-zero-grpc-timeout-is-504").read_bytes())
    app, loop = targets._app()
    for headers, status in (([(b"grpc-timeout", b"0S")], 504), ([], 200)):
        answer = loop.run_until_complete(
            targets._serve(
                app, method="GET", raw_path=b"/v1/search", query=b"", headers=headers, body=b""
            )
        )
        assert answer[0] == status


def test_a_content_length_with_a_non_ascii_digit_is_not_a_500() -> None:
    """regression-content-length-superscript-digit (found by the app fuzzer): "99²0" passed
    str.isdigit() and crashed int() with a 500; the body is now simply read and served."""
    TARGETS["app"]((CORPUS / "app" / "regression-content-length-superscript-digit").read_bytes())
    app, loop = targets._app()
    headers = [(b"content-length", "99\u00b20".encode("latin-1"))]
    status, _ = loop.run_until_complete(
        targets._serve(
            app, method="POST", raw_path=b"/v1/all", query=b"", headers=headers, body=b"{}"
        )
    )
    assert status == 200
