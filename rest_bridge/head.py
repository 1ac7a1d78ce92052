"""HEAD on every GET route: the GET's status and headers (Content-Length included), no body.

The request goes inward as a GET, so the answer (and its compression, and its ETag) is exactly
the GET's; only the body is dropped on the way out. HEAD_KEY in the scope tells the transcoder
the method the client sent, for its messages.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_KEY = "rest_bridge.head"


def method_sent(scope: Scope) -> str:
    """The method as the client sent it (HEAD for a HEAD served as a GET)."""
    return "HEAD" if scope.get(HEAD_KEY) else str(scope["method"])


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})

        await self.app({**scope, "method": "GET", HEAD_KEY: True}, receive, send_head)
