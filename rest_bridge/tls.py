"""TLS for the HTTP listeners and the gRPC port and client, with certificates re-read on SIGHUP.

Each holder keeps the flags' paths, checks the files with rest_bridge.certs at start (so a bad
file stops start-up) and again on reload (a bad file then keeps the certificate in use and the
reload fails with the same message). Connections made after a successful reload get the new
certificate; connections already open keep theirs.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from rest_bridge.certs import CertificateError, KeyPair, read_certificates, read_key_pair

log = logging.getLogger(__name__)

ALPN = ("h2", "http/1.1")


@dataclass(frozen=True, slots=True)
class PairPaths:
    """Where a certificate and its key live, and the flags that named them (for messages)."""

    cert: Path
    key: Path
    cert_flag: str = "--tls-cert"
    key_flag: str = "--tls-key"

    def read(self) -> KeyPair:
        """Raises CertificateError (see rest_bridge.certs.read_key_pair)."""
        return read_key_pair(self.cert, self.key, self.cert_flag, self.key_flag)


class HttpTls:
    """One ssl.SSLContext for an HTTPS listener (ALPN h2 and http/1.1), reloaded in place."""

    def __init__(self, paths: PairPaths) -> None:
        """Raises CertificateError when the files cannot be used."""
        self.paths = paths
        paths.read()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(list(ALPN))
        self.context.load_cert_chain(paths.cert, paths.key)

    def reload(self) -> None:
        """Check the files again, then load them into the same context.

        Raises:
            CertificateError: the files cannot be used; the context keeps the old pair.
        """
        self.paths.read()
        self.context.load_cert_chain(self.paths.cert, self.paths.key)


class GrpcServerTls:
    """Server credentials whose certificate (and client CA) grpc fetches again after reload().

    grpc calls the fetcher before each new handshake; it returns the configuration read by the
    last reload() once, and None (keep the current one) otherwise.
    """

    def __init__(self, paths: PairPaths, client_ca: Path | None = None) -> None:
        """Raises CertificateError when a file cannot be used."""
        self.paths, self.client_ca = paths, client_ca
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self._fetch,  # type: ignore[arg-type]  # grpc-stubs omit None: "keep the current"
            require_client_authentication=client_ca is not None,
        )

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        pair = self.paths.read()
        roots = None
        if self.client_ca is not None:
            roots = read_certificates(self.client_ca, "--tls-client-ca")
        return grpc.ssl_server_certificate_configuration([(pair.key_pem, pair.cert_pem)], roots)

    def reload(self) -> None:
        """Read the files again for the next handshakes.

        Raises:
            CertificateError: a file cannot be used; the current certificate stays.
        """
        configuration = self._configuration()
        with self._lock:
            self._pending = configuration

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            configuration, self._pending = self._pending, None
        return configuration


@dataclass(frozen=True, slots=True)
class UpstreamFiles:
    """What --upstream-ca, --upstream-cert and --upstream-key name: TLS towards the server."""

    ca: Path
    client: PairPaths | None = None

    def read(self) -> tuple[bytes, bytes | None, bytes | None]:
        """The CA, the client key and the client chain as PEM bytes, each checked.

        Raises:
            CertificateError: a file cannot be used; the message names the flag and the file.
        """
        roots = read_certificates(self.ca, "--upstream-ca")
        pair = self.client.read() if self.client is not None else None
        return roots, pair.key_pem if pair else None, pair.cert_pem if pair else None


@dataclass(frozen=True, slots=True)
class ServeTls:
    """The certificates of `checkpoint-server serve`: the gRPC port's and the REST port's."""

    grpc: GrpcServerTls
    http: HttpTls

    def reload(self) -> None:
        """SIGHUP: re-read both; a bad file is logged and the certificates in use are kept."""
        try:
            self.grpc.reload()
            self.http.reload()
        except CertificateError as exc:
            log.error("SIGHUP: kept the current certificates: %s", exc)
        else:
            log.info("SIGHUP: reloaded %s", self.http.paths.cert)


def read_serve_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServeTls | None:
    """The TLS of serve from its flags; None when no certificate is given.

    Raises:
        CertificateError: a file cannot be used, a half-given pair, or a client CA without TLS.
    """
    if cert is None and key is None:
        if client_ca is not None:
            raise CertificateError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if cert is None or key is None:
        raise CertificateError("--tls-cert and --tls-key go together")
    paths = PairPaths(cert, key)
    return ServeTls(grpc=GrpcServerTls(paths, client_ca), http=HttpTls(paths))
