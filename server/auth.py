"""Who may call what: bearer token -> token record -> the scope each method needs."""

from __future__ import annotations

import re
from collections.abc import Mapping

from server.errors import PermissionDenied, Unauthenticated
from server.tokens import READ_SCOPE, WRITE_SCOPE, TokenRecord, hash_token

SERVICE = "checkpoint.v1.CheckpointService"

# The scope each RPC needs (api-contract.md, "Who may do what"). A CheckpointService method
# missing here is refused: new methods are closed until someone decides who may call them.
METHOD_SCOPES: dict[str, str] = {
    f"/{SERVICE}/GetCheckpoint": READ_SCOPE,
    f"/{SERVICE}/ListCheckpoints": READ_SCOPE,
    f"/{SERVICE}/WatchCheckpoints": READ_SCOPE,
    f"/{SERVICE}/CreateCheckpoint": WRITE_SCOPE,
    f"/{SERVICE}/UpdateCheckpoint": WRITE_SCOPE,
    f"/{SERVICE}/DeleteCheckpoint": WRITE_SCOPE,
}

# Reflection and health need no token, so grpcurl and probes work as is.
OPEN_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)

# RFC 6750 section 2.1: "Bearer" (any case), one or more spaces, a b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*) *")


class Authenticator:
    def __init__(self, tokens: Mapping[str, TokenRecord]) -> None:
        self._tokens = dict(tokens)
        # Known tokens seen before, so a hit skips SHA-256; only hits are kept, so its size is
        # bounded by the tokens file, whatever clients send.
        self._seen: dict[str, TokenRecord] = {}
        # The same, by the whole header in its usual form "Bearer <token>" (what clients send),
        # so a hit skips the header's parse too; only that one form, so it is bounded alike.
        self._headers: dict[str, TokenRecord] = {}

    def authorize(self, method: str, authorization: list[str]) -> TokenRecord:
        """The token record allowed to call method, given every authorization metadata value.

        Raises:
            Unauthenticated: no token, a malformed header, or an unknown token.
            PermissionDenied: the token lacks the method's scope.
        """
        record = self._headers.get(authorization[0]) if len(authorization) == 1 else None
        if record is None:
            record = self._record(authorization)
        scope = METHOD_SCOPES.get(method)
        if scope is None or scope not in record.scopes:
            need = scope or "a scope no token has"
            raise PermissionDenied(f"token {record.name!r} lacks the scope {need} for this call")
        return record

    def _record(self, authorization: list[str]) -> TokenRecord:
        """The token record of the authorization values, parsed. Raises Unauthenticated."""
        if not authorization:
            raise Unauthenticated(
                "missing bearer token: send the header 'Authorization: Bearer <token>'"
            )
        match = _BEARER.fullmatch(authorization[0]) if len(authorization) == 1 else None
        if match is None:
            raise Unauthenticated("malformed authorization header: expected 'Bearer <token>'")
        token = match.group(1)
        record = self._seen.get(token)
        if record is None:
            record = self._tokens.get(hash_token(token))
            if record is None:
                raise Unauthenticated("invalid bearer token")
            self._seen[token] = record
        header = f"Bearer {token}"
        if authorization[0] == header:
            self._headers[header] = record
        return record
