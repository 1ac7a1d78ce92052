"""Coverage-guided fuzzing (atheris) of the bridge's input handling, from raw bytes.

tests/fuzz/targets.py holds one one-input function per target; `make fuzz` runs each under
atheris for FUZZ_SECONDS (tests/fuzz/run.py), and tests/fuzz/test_corpus.py replays the
committed seed corpus (tests/fuzz/corpus/<target>/) through the same functions in `make test`.
"""
