"""`make bench`: the real processes under wrk and h2load, beside baselines measured in the same run.

See bench/__main__.py for what is measured and how; bench/results/ (not in git) keeps the reports.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The checkout being measured (every row runs this tree's commands and files)."""
