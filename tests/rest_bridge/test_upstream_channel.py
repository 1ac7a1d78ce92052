"""rest_bridge.upstream_channel without a server: what SIGHUP does to the channel and its waiters.

The calls themselves, old and new channel, are crossed over real processes in
tests/e2e/test_upstream_reload.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rest_bridge.__main__ import build_parser, upstream_connections
from rest_bridge.certs import CertificateError
from rest_bridge.tls import UpstreamFiles
from rest_bridge.upstream_channel import UpstreamChannel
from tests.certs import make_ca

pytestmark = pytest.mark.anyio


NOWHERE = "127.0.0.1:9"
"""A target nothing answers on (the tests never call it)."""


@pytest.fixture
def silent() -> Iterator[str]:
    """A port that takes TCP connections and never answers: a channel to it stays CONNECTING
    (the lanes connect at once, and a refused connection would change their state)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def test_same_files_keep_the_channel_and_changed_ones_replace_it(tmp_path: Path) -> None:
    """A SIGHUP with unchanged files keeps the channel (no reconnect); changed files make a new
    one, and the old one is closed in the background; a bad file raises and keeps the current."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(make_ca().cert_pem)
    upstream = UpstreamChannel(NOWHERE, UpstreamFiles(ca))
    first = upstream.current
    assert upstream.reload() is False
    assert upstream.current is first
    ca.write_bytes(make_ca("another").cert_pem)
    assert upstream.reload() is True
    assert upstream.current is not first
    await asyncio.sleep(0.1)  # the old channel has no call: it closes at once
    assert first.get_state() == grpc.ChannelConnectivity.SHUTDOWN
    second = upstream.current
    ca.write_text("not a certificate\n")
    with pytest.raises(CertificateError, match=f"--upstream-ca {ca}"):
        upstream.reload()
    assert upstream.current is second
    await upstream.close()
    assert second.get_state() == grpc.ChannelConnectivity.SHUTDOWN


async def test_a_replacement_wakes_a_state_watcher(tmp_path: Path, silent: str) -> None:
    """The schema follower waits for state changes; a new channel counts as one, so it looks at
    the new channel instead of waiting on the retired one."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(make_ca().cert_pem)
    upstream = UpstreamChannel(silent, UpstreamFiles(ca), connections=2)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if upstream.get_state() == grpc.ChannelConnectivity.CONNECTING:
            break
    assert upstream.get_state() == grpc.ChannelConnectivity.CONNECTING
    waiting = asyncio.ensure_future(upstream.wait_for_state_change(upstream.get_state()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    ca.write_bytes(make_ca("another").cert_pem)
    upstream.reload()
    await asyncio.wait_for(waiting, timeout=5)
    await upstream.close()


async def test_without_tls_there_is_nothing_to_reload() -> None:
    upstream = UpstreamChannel(NOWHERE, None)
    assert upstream.reload() is False
    await upstream.close()


def test_connections_are_four_by_default_and_one_with_reflect() -> None:
    """0 (the default) is resolved by --reflect: a rolling change behind one address would
    otherwise mix two servers' schemas (tests/transcoding/test_reflect.py); a given count wins."""
    args = build_parser().parse_args([])
    assert upstream_connections(args.upstream_connections, args.reflect) == 4
    args = build_parser().parse_args(["--reflect"])
    assert upstream_connections(args.upstream_connections, args.reflect) == 1
    args = build_parser().parse_args(["--reflect", "1", "--upstream-connections", "3"])
    assert upstream_connections(args.upstream_connections, args.reflect) == 3
