"""bench.grpc_instructions reads callgrind's total, whichever line of the file carries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.grpc_instructions import instructions


@pytest.mark.parametrize("line", ["summary: 1656845565", "totals: 1656845565"])
def test_the_total_is_read(tmp_path: Path, line: str) -> None:
    out = tmp_path / "noop.callgrind"
    out.write_text(f"# callgrind format\nevents: Ir\nfn=(1) main\n16 3\n{line}\n")
    assert instructions(out) == 1656845565


def test_a_file_without_totals_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "noop.callgrind"
    out.write_text("# callgrind format\nevents: Ir\n")
    with pytest.raises(RuntimeError, match="no totals"):
        instructions(out)
