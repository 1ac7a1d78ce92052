"""TLS and mTLS with real handshakes, certificates made here with `cryptography`.

One `checkpoint-server serve` with --tls-cert/--tls-key/--tls-client-ca (gRPC requires a client
certificate the test CA signed) and --rest-listen (HTTPS), and a `checkpoint-rest-bridge` serving
HTTPS and calling the server over mTLS (--upstream-ca/--upstream-cert/--upstream-key). Then:
h1 and h2 (ALPN) over HTTPS on both doors, gRPC with and without a client certificate (health and
reflection included), rotation on SIGHUP without a restart, and bad files refused at start.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rest_bridge.__main__ import main as bridge_main
from server.__main__ import main as server_main
from tests.certs import Issued, issue, make_ca
from tests.e2e import (
    EXAMPLE_ID,
    START_TIMEOUT,
    Process,
    Tokens,
    bearer,
    executable,
    free_port,
    start,
    start_server,
)

_REST = re.compile(r"serving REST on (\S+:\d+)")


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Issued
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    """A client certificate signed by another CA."""
    stranger_key: Path


@dataclass(frozen=True)
class TlsEnv:
    pki: Pki
    grpc_address: str
    inprocess: str
    bridge: str
    server: Process
    bridge_process: Process


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, a server and a client certificate it signed, and a stranger's client pair."""
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    server_cert, server_key = issue(ca, "localhost").write(directory, "server")
    client_cert, client_key = issue(ca, "client", client=True).write(directory, "client")
    stranger = issue(make_ca("another CA"), "stranger", client=True)
    stranger_cert, stranger_key = stranger.write(directory, "stranger")
    return Pki(
        directory,
        ca,
        ca_file,
        server_cert,
        server_key,
        client_cert,
        client_key,
        stranger_cert,
        stranger_key,
    )


def _verify(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_file))


def _wait_https(process: Process, url: str, context: ssl.SSLContext) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(url, verify=context, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} never answered 200\n{process.output()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tls(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, e2e_tokens: Tokens, e2e_database: str
) -> Iterator[TlsEnv]:
    """The mTLS server with its HTTPS in-process door, and an HTTPS bridge calling it."""
    work = tmp_path_factory.mktemp("tls")
    server_tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    extra = [*server_tls, "--tls-client-ca", str(pki.ca_file), "--rest-listen", "127.0.0.1:0"]
    server = start_server("tls-server", work, e2e_database, e2e_tokens.path, [*extra])
    try:
        rest = _REST.search(server.process.wait_for_output(_REST))
        assert rest is not None
        listen = f"127.0.0.1:{free_port()}"
        upstream = ["--upstream", server.address, "--upstream-ca", str(pki.ca_file)]
        upstream += ["--upstream-cert", str(pki.client_cert), "--upstream-key", str(pki.client_key)]
        args = [executable("checkpoint-rest-bridge"), "--listen", listen, *upstream, *server_tls]
        bridge = start("tls-bridge", args, work)
    except BaseException:
        server.process.stop()
        raise
    env = TlsEnv(
        pki, server.address, f"https://{rest.group(1)}", f"https://{listen}", server.process, bridge
    )
    try:
        _wait_https(server.process, env.inprocess + "/readyz", _verify(pki))
        _wait_https(bridge, env.bridge + "/readyz", _verify(pki))
        yield env
    finally:
        bridge.stop()
        server.process.stop()


@pytest.mark.parametrize("door", ["bridge", "inprocess"])
@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2-alpn"])
def test_https_on_both_doors(tls: TlsEnv, e2e_tokens: Tokens, door: str, http2: bool) -> None:
    """Both doors answer over HTTPS, HTTP/1.1 or HTTP/2 as ALPN picks; the bridge's answer comes
    through its mTLS channel to the server."""
    base = tls.bridge if door == "bridge" else tls.inprocess
    with httpx.Client(verify=_verify(tls.pki), http2=http2, timeout=5) as client:
        response = client.get(
            f"{base}/v1/checkpoints/{EXAMPLE_ID}", headers=bearer(e2e_tokens.read)
        )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == EXAMPLE_ID
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")


def _channel(tls: TlsEnv, cert: Path | None, key: Path | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.pki.ca_file.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(tls.grpc_address, credentials)


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
    status: int = reply.status
    return status


def _list_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[no-untyped-call]
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = stub.ServerReflectionInfo(iter([request]), timeout=5)
    return [s.name for reply in replies for s in reply.list_services_response.service]


def test_grpc_with_a_client_certificate_is_served(tls: TlsEnv) -> None:
    """A client presenting a certificate the CA signed gets health and reflection."""
    with _channel(tls, tls.pki.client_cert, tls.pki.client_key) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
        assert "checkpoint.v1.CheckpointService" in _list_services(channel)


@pytest.mark.parametrize("who", ["no-certificate", "another-ca"])
def test_grpc_without_an_accepted_certificate_is_refused(tls: TlsEnv, who: str) -> None:
    """Without a client certificate, or with one another CA signed, the handshake fails: health
    and reflection are refused too (UNAVAILABLE, nothing served)."""
    pki = tls.pki
    cert, key = (None, None) if who == "no-certificate" else (pki.stranger_cert, pki.stranger_key)
    with _channel(tls, cert, key) as channel:
        with pytest.raises(grpc.RpcError) as health_error:
            _health(channel)
        with pytest.raises(grpc.RpcError) as reflection_error:
            _list_services(channel)
    assert health_error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reflection_error.value.code() == grpc.StatusCode.UNAVAILABLE


def _served_serial(address: str, pki: Pki, client: bool) -> int:
    """The serial number of the certificate a fresh TLS handshake with address gets."""
    host, port = address.removeprefix("https://").rsplit(":", 1)
    context = _verify(pki)
    if client:
        context.load_cert_chain(pki.client_cert, pki.client_key)
        context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_sighup_serves_a_rotated_certificate_without_a_restart(tls: TlsEnv) -> None:
    """New certificate files and a SIGHUP: new handshakes on all three ports get the new
    certificate, a connection opened before keeps working, and no process restarted."""
    pki = tls.pki
    ports = {tls.grpc_address: True, tls.inprocess: False, tls.bridge: False}
    old = {address: _served_serial(address, pki, client) for address, client in ports.items()}
    pids = (tls.server.popen.pid, tls.bridge_process.popen.pid)
    with httpx.Client(verify=_verify(pki), timeout=5) as kept:
        assert kept.get(tls.bridge + "/healthz").status_code == 200
        rotated = issue(pki.ca, "localhost")
        for path, data in ((pki.server_cert, rotated.cert_pem), (pki.server_key, rotated.key_pem)):
            temporary = path.with_suffix(".new")
            temporary.write_bytes(data)
            temporary.replace(path)
        for pid in pids:
            os.kill(pid, signal.SIGHUP)
        new = rotated.certificate.serial_number
        deadline = time.monotonic() + 10
        served = dict(old)
        while time.monotonic() < deadline and set(served.values()) != {new}:
            time.sleep(0.1)
            served = {address: _served_serial(address, pki, c) for address, c in ports.items()}
        assert kept.get(tls.bridge + "/healthz").status_code == 200
    assert set(old.values()) != {new}
    assert served == dict.fromkeys(ports, new)
    assert (tls.server.popen.poll(), tls.bridge_process.popen.poll()) == (None, None)
    with _channel(tls, pki.client_cert, pki.client_key) as channel:
        assert _health(channel) == health_pb2.HealthCheckResponse.SERVING


def _bad_files(directory: Path, pki: Pki) -> dict[str, tuple[Path, Path, Path]]:
    """(certificate, key, the file the message must name) for each kind of bad file."""
    expired = issue(pki.ca, "localhost", not_after=datetime.now(UTC) - timedelta(hours=1))
    expired_cert, expired_key = expired.write(directory, "expired")
    other = issue(pki.ca, "localhost")
    other_cert, _ = other.write(directory, "other")
    garbage = directory / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = directory / "missing.pem"
    return {
        "missing": (missing, pki.server_key, missing),
        "not-pem": (garbage, pki.server_key, garbage),
        "expired": (expired_cert, expired_key, expired_cert),
        "key-of-another-certificate": (other_cert, pki.server_key, pki.server_key),
    }


MAINS = {"checkpoint-server": server_main, "checkpoint-rest-bridge": bridge_main}


def _run_main(command: str, args: list[str]) -> int:
    """An entry point's main in this process, leaving the root logger as it found it."""
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        return MAINS[command](args)
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)


def _start_up_args(command: str, tmp_path: Path, tokens: Path, tls: list[str]) -> list[str]:
    if command == "checkpoint-server":
        args = ["serve", "--listen", "127.0.0.1:0", "--tokens", str(tokens)]
        return [*args, "--database", f"sqlite:///{tmp_path / 'db'}", *tls]
    return ["--listen", f"127.0.0.1:{free_port()}", *tls]


@pytest.mark.parametrize("command", sorted(MAINS))
def test_a_missing_certificate_file_stops_the_process(
    tmp_path: Path, pki: Pki, e2e_tokens: Tokens, command: str
) -> None:
    """The console script with a missing --tls-cert exits 2 with a message naming the file."""
    missing = tmp_path / "missing.pem"
    tls = ["--tls-cert", str(missing), "--tls-key", str(pki.server_key)]
    args = [executable(command), *_start_up_args(command, tmp_path, e2e_tokens.path, tls)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--tls-cert {missing}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", sorted(MAINS))
@pytest.mark.parametrize("case", ["missing", "not-pem", "expired", "key-of-another-certificate"])
def test_bad_certificate_files_stop_start_up_naming_the_file(
    tmp_path: Path,
    pki: Pki,
    command: str,
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing file, a file that is not PEM, an expired certificate or a key that is not the
    certificate's stops start-up (each entry point's main, in this process) with status 2 and
    a message naming the file, before anything listens."""
    cert, key, named = _bad_files(tmp_path, pki)[case]
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    # The certificates are checked before the tokens file is read: it need not exist.
    status = _run_main(command, _start_up_args(command, tmp_path, tmp_path / "tokens.json", tls))
    err = capsys.readouterr().err
    assert status == 2, err
    assert str(named) in err, err


@pytest.mark.parametrize(
    ("flag", "rest"),
    [
        ("--tls-client-ca", ["--tls-cert", "{cert}", "--tls-key", "{key}"]),
        ("--upstream-ca", []),
    ],
)
def test_a_missing_ca_file_stops_start_up(
    tmp_path: Path,
    pki: Pki,
    flag: str,
    rest: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CA file that does not exist (the server's client CA, the bridge's upstream CA) stops
    start-up with a message naming it."""
    missing = tmp_path / "no-ca.pem"
    filled = [a.format(cert=pki.server_cert, key=pki.server_key) for a in rest]
    command = "checkpoint-server" if flag == "--tls-client-ca" else "checkpoint-rest-bridge"
    args = _start_up_args(command, tmp_path, tmp_path / "t.json", [*filled, flag, str(missing)])
    status = _run_main(command, args)
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"{flag} {missing}" in err, err
