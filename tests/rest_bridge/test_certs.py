"""Certificate checks at start and on reload (rest_bridge.certs and .tls), without sockets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rest_bridge.certs import CertificateError, read_certificates, read_key_pair
from rest_bridge.tls import GrpcServerTls, HttpTls, PairPaths, UpstreamFiles, read_serve_tls
from tests.certs import issue, make_ca


def test_a_good_pair_is_read_with_its_bytes(tmp_path: Path) -> None:
    """A certificate and its own key are accepted and returned as the files' bytes."""
    ca = make_ca()
    cert, key = issue(ca, "localhost").write(tmp_path, "server")
    pair = read_key_pair(cert, key, "--tls-cert", "--tls-key")
    assert pair.cert_pem == cert.read_bytes()
    assert pair.key_pem == key.read_bytes()


def test_a_certificate_not_yet_valid_is_refused(tmp_path: Path) -> None:
    """A certificate whose validity starts later is refused, naming the flag and the file."""
    cert, _ = issue(make_ca(), "localhost").write(tmp_path, "server")
    early = datetime.now(UTC) - timedelta(days=10)
    with pytest.raises(CertificateError, match=rf"--tls-cert {cert}: .*not valid before"):
        read_certificates(cert, "--tls-cert", now=early)


def test_an_encrypted_or_garbage_key_is_refused(tmp_path: Path) -> None:
    """A key file that is not an unencrypted PEM key is refused, naming the key flag."""
    cert, key = issue(make_ca(), "localhost").write(tmp_path, "server")
    key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CertificateError, match=rf"--tls-key {key}: not an unencrypted PEM"):
        read_key_pair(cert, key, "--tls-cert", "--tls-key")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("cert", "--tls-cert and --tls-key go together"),
        ("key", "--tls-cert and --tls-key go together"),
        ("client-ca", "--tls-client-ca needs --tls-cert"),
    ],
)
def test_serve_refuses_incomplete_tls_flags(tmp_path: Path, given: str, message: str) -> None:
    """Half a pair, or a client CA without a certificate, stops `serve` with a usage message."""
    cert, key = issue(make_ca(), "localhost").write(tmp_path, "server")
    args = {"cert": (cert, None, None), "key": (None, key, None), "client-ca": (None, None, cert)}
    with pytest.raises(CertificateError, match=message):
        read_serve_tls(*args[given])
    assert read_serve_tls(None, None, None) is None


def test_a_failed_reload_keeps_the_certificate_in_use(tmp_path: Path) -> None:
    """A reload that finds a broken file raises and leaves the next handshake's certificate
    as it was; a good file afterwards is fetched once by grpc."""
    ca = make_ca()
    cert, key = issue(ca, "localhost").write(tmp_path, "server")
    http, grpc_tls = HttpTls(PairPaths(cert, key)), GrpcServerTls(PairPaths(cert, key), cert)
    assert grpc_tls._fetch() is None
    key.write_text("broken")
    for holder in (http, grpc_tls):
        with pytest.raises(CertificateError, match=str(key)):
            holder.reload()
    assert grpc_tls._fetch() is None
    issue(ca, "localhost").write(tmp_path, "server")
    http.reload()
    grpc_tls.reload()
    assert grpc_tls._fetch() is not None
    assert grpc_tls._fetch() is None


def test_upstream_files_are_checked(tmp_path: Path) -> None:
    """The upstream CA must be a readable certificate file; a client pair is checked too."""
    ca = make_ca()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    issued = issue(ca, "client", client=True)
    cert, key = issued.write(tmp_path, "client")
    pair = PairPaths(cert, key, "--upstream-cert", "--upstream-key")
    assert UpstreamFiles(ca_file, pair).read() == (ca.cert_pem, issued.key_pem, issued.cert_pem)
    with pytest.raises(CertificateError, match="--upstream-ca"):
        UpstreamFiles(tmp_path / "none.pem").read()
    key.write_text("not a key\n")
    with pytest.raises(CertificateError, match=f"--upstream-key {key}"):
        UpstreamFiles(ca_file, pair).read()
