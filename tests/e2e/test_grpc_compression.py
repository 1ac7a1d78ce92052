"""gzip-compressed gRPC messages: the server accepts them, and the bridge's channel reads them.

A recording TCP proxy sits on each connection and reads the HTTP/2 DATA frames, so the tests
see that the messages really crossed the socket compressed (the gRPC message prefix's flag is
1), not only that the calls succeeded.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from checkpoint.v1 import checkpoint_pb2 as pb
from checkpoint.v1 import checkpoint_service_pb2 as svc
from checkpoint.v1 import checkpoint_service_pb2_grpc as svc_grpc
from grpc_health.v1 import health, health_pb2_grpc

from tests.e2e import LONGEST_NAME, SERVICE, GrpcServer, Tokens, bearer, start_bridge

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _PADDED = 0, 0x8


class RecordingProxy:
    """Forwards 127.0.0.1 connections to upstream, keeping every byte of both directions."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.sent = bytearray()
        """Client to upstream."""
        self.received = bytearray()
        """Upstream to client."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream, timeout=10)
            for src, dst, log in ((client, server, self.sent), (server, client, self.received)):
                threading.Thread(target=_pump, args=(src, dst, log), daemon=True).start()

    def close(self) -> None:
        self._listener.close()


def _pump(src: socket.socket, dst: socket.socket, log: bytearray) -> None:
    try:
        while chunk := src.recv(65536):
            log.extend(chunk)
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        src.close()  # each socket is the src of one pump: closed once, by its reader


def message_flags(stream: bytes) -> list[int]:
    """The compressed-flag byte of every gRPC message starting a DATA frame in stream."""
    data = stream.removeprefix(_PREFACE)
    flags, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        kind, frame_flags = data[at + 3], data[at + 4]
        payload = data[at + 9 : at + 9 + length]
        if kind == _DATA and frame_flags & _PADDED:
            payload = payload[1:]
        if kind == _DATA and len(payload) >= 5:
            flags.append(payload[0])
        at += 9 + length
    return flags


def test_the_server_accepts_gzip_compressed_requests(
    grpc_server: GrpcServer, e2e_tokens: Tokens
) -> None:
    """A client sending gzip gets its checkpoint, and the request really went compressed
    (grpcio sends a message plain when gzip would not shrink it, hence the long name)."""
    proxy = RecordingProxy(grpc_server.address)
    try:
        with grpc.insecure_channel(proxy.address, compression=grpc.Compression.Gzip) as channel:
            reply = svc_grpc.CheckpointServiceStub(channel).GetCheckpoint(
                svc.GetCheckpointRequest(checkpoint_id=LONGEST_NAME),
                metadata=(("authorization", f"Bearer {e2e_tokens.read}"),),
                timeout=10,
            )
    finally:
        proxy.close()
    assert reply.checkpoint.display_name == LONGEST_NAME
    assert message_flags(bytes(proxy.sent)) == [1]


@pytest.fixture
def gzip_upstream() -> Iterator[str]:
    """A gRPC stand-in for the server that compresses every answer with gzip."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4), compression=grpc.Compression.Gzip)

    def get(request: svc.GetCheckpointRequest, context: grpc.ServicerContext) -> object:
        return svc.GetCheckpointResponse(
            checkpoint=pb.Checkpoint(display_name=request.checkpoint_id, etag="v7" + "x" * 300)
        )

    handler = grpc.unary_unary_rpc_method_handler(
        get,
        request_deserializer=svc.GetCheckpointRequest.FromString,
        response_serializer=svc.GetCheckpointResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"GetCheckpoint": handler}),)
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait(5)


def test_the_bridges_channel_reads_gzip_compressed_answers(
    gzip_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The separate bridge serves an upstream answering in gzip; the answer went compressed."""
    proxy = RecordingProxy(gzip_upstream)
    bridge = start_bridge("gzip-bridge", tmp_path_factory.mktemp("gzip"), proxy.address)
    try:
        response = httpx.get(
            f"{bridge.base_url}/v1/checkpoints/zipped", headers=bearer("t"), timeout=10
        )
    finally:
        bridge.process.stop()
        proxy.close()
    assert response.status_code == 200, response.text
    assert response.json()["data"]["display_name"] == "zipped"
    assert 1 in message_flags(bytes(proxy.received))
