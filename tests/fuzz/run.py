"""Run one fuzz target under atheris: python -m tests.fuzz.run TARGET [libFuzzer flags].

The committed seeds (tests/fuzz/corpus/TARGET) are read but never written: new inputs go to
.fuzz/corpus/TARGET and crashes to .fuzz/crashes/ (both git-ignored), so a run leaves the
tree clean. A crash found becomes a named seed plus a unit test (tests/fuzz/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

HERE = Path(__file__).parent
WORK = HERE.parent.parent / ".fuzz"


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit("usage: python -m tests.fuzz.run TARGET [libFuzzer flags]")
    name, flags = argv[1], argv[2:]
    with atheris.instrument_imports(include=["rest_bridge", "h2", "hpack"]):
        from tests.fuzz.targets import TARGETS
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    scratch = WORK / "corpus" / name
    scratch.mkdir(parents=True, exist_ok=True)
    (WORK / "crashes").mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / name
    args = [
        argv[0],
        f"-artifact_prefix={WORK / 'crashes'}/{name}-",
        "-max_len=4096",
        *flags,
        str(scratch),
        str(seeds),
    ]
    target = TARGETS[name]
    target(b"")  # build the schemas and the app before the clock starts
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
