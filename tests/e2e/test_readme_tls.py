"""The README's TLS and mTLS example works as pasted: it is run here, ports aside.

The block after `<!-- tls-example -->` runs with bash in a scratch directory that links `.venv`
(this interpreter's environment) and `scripts/`, with its three ports swapped for free ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e import REPO, free_port

PORTS = ("50071", "8071", "8072")


def readme_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text.split("<!-- tls-example -->", 1)[1]
    return after.split("```bash\n", 1)[1].split("```", 1)[0]


def test_readme_tls_example_runs_as_pasted(tmp_path: Path) -> None:
    """The example makes certificates with scripts/make_certs.sh, creates a checkpoint over
    HTTPS through the bridge (mTLS upstream), reads it over HTTP/2 from the in-process door,
    gets SERVING over gRPC with a client certificate and is refused without one."""
    block = readme_block()
    for port in PORTS:
        assert f":{port}" in block, port
        block = block.replace(f":{port}", f":{free_port()}")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    done = subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, (out, done.stderr[-3000:])
    assert out.count('"display_name":"tls-demo"') == 2, out
    assert "(HTTP/2)" in out, out
    assert '"status": "SERVING"' in out, out
    assert out.rstrip().endswith("refused: no client certificate"), out
    assert not (tmp_path / "tls-demo").exists()
