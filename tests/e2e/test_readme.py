"""README.md stays true to the code: its first screen, every flag and environment variable.

The examples themselves are run against a live `make run` demo in test_demo.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable

import pytest

from rest_bridge.__main__ import build_parser as bridge_parser
from rest_bridge.config import DEFAULT_LISTEN as BRIDGE_LISTEN
from server.__main__ import build_parser as server_parser
from server.config import DEFAULT_LISTEN as SERVER_LISTEN
from tests.e2e import ERROR_CODES, REPO

README = REPO / "README.md"
FIRST_SCREEN_LINES = 40


def readme() -> str:
    return README.read_text(encoding="utf-8")


def help_text(parse: Callable[[], object]) -> str:
    """What an argparse --help prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parse()
    return out.getvalue()


HELP = {
    "checkpoint-server serve": lambda: server_parser().parse_args(["serve", "--help"]),
    "checkpoint-server token create": lambda: server_parser().parse_args(
        ["token", "create", "--help"]
    ),
    "checkpoint-server import": lambda: server_parser().parse_args(["import", "--help"]),
    "checkpoint-rest-bridge": lambda: bridge_parser().parse_args(["--help"]),
}


def test_first_screen_gives_the_two_commands_and_examples() -> None:
    """The first screen has `make run`, `make test`, a curl and a buf curl example."""
    first = "\n".join(readme().splitlines()[:FIRST_SCREEN_LINES])
    assert re.search(r"^make run\b", first, re.MULTILINE)
    assert re.search(r"^make test\b", first, re.MULTILINE)
    assert re.search(r"^curl .*Authorization: Bearer \$TOKEN", first, re.MULTILINE)
    assert re.search(r"buf curl --protocol grpc --http2-prior-knowledge", first)


@pytest.mark.parametrize("command", sorted(HELP))
def test_every_flag_and_environment_variable_is_documented(command: str) -> None:
    """Each flag and environment variable a command's --help lists appears in the README."""
    text = help_text(HELP[command])
    flags = set(re.findall(r"^ {2}(--[a-z][a-z-]*)(?=[\s,])", text, re.MULTILINE)) - {"--help"}
    variables = set(re.findall(r"\[([A-Z][A-Z0-9_]+)\]", text))
    assert flags, text
    body = readme()
    assert f"### `{command}`" in body
    section = body.split(f"### `{command}`", 1)[1].split("\n#", 1)[0]
    missing = sorted(f for f in flags if f"`{f}" not in section)
    missing += sorted(v for v in variables if f"`{v}`" not in section)
    assert missing == [], f"README section of {command} lacks {missing}"


def test_examples_use_the_default_addresses_and_demo_names() -> None:
    """The examples target the default ports and display names that `make run` imports (or
    that the examples create first)."""
    body = readme()
    assert SERVER_LISTEN == "127.0.0.1:50051"
    assert BRIDGE_LISTEN == "127.0.0.1:8080"
    names = {
        c["display_name"] for c in json.loads((REPO / "scripts/demo_checkpoints.json").read_text())
    }
    names |= set(re.findall(r'"display_name": "([^"]+)"', body))  # made by the examples
    urls = re.findall(r"http://127\.0\.0\.1:8080/v1/checkpoints/([^\s?'\"]+)", body)
    assert urls
    for segment in urls:
        assert segment.replace("%20", " ") in names, segment
    assert f"http://{SERVER_LISTEN}/checkpoint.v1.CheckpointService/GetCheckpoint" in body


def test_error_table_names_every_code() -> None:
    """The README's error table lists every error.code and HTTP status of the contract's table."""
    body = readme()
    table = body.split("### Errors", 1)[1].split("\n## ", 1)[0]
    for code in ERROR_CODES:
        assert f"`{code}`" in table or code.upper() in table, code
    for status in (401, 403, 404, 409, 422, 429, 503, 504, 499, 501, 500):
        assert f"| {status} |" in table, status


def test_decisions_section_exists() -> None:
    """The README keeps the heading the lead engineer fills with decisions."""
    assert "\n## Decisions where the contract is silent\n" in readme()
