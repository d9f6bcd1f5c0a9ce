"""Request-size limit: a body larger than `serve.max_body_bytes` gets 413 before any of it is parsed.

Pure ASGI (not BaseHTTPMiddleware) so it can refuse on the Content-Length header without reading the body,
and count the bytes of a chunked body as they arrive, stopping at the limit.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from memorylab.serve.deps import ingress_of_scope


class BodyTooLarge(Exception):
    pass


async def _reply_413(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """`max_bytes`: a fixed limit; None (the served app) reads the replica's serve.max_body_bytes."""

    def __init__(self, app: Any, max_bytes: Optional[int] = None) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes if self.max_bytes is not None else ingress_of_scope(scope).config.serve.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _reply_413(send, limit)

        seen = 0
        started = False
        too_large = False

        async def counting_receive() -> dict:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise BodyTooLarge()
            return message

        replaced = False

        async def tracking_send(message: dict) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start" and not started:
                started = True
                if too_large:
                    # The app caught BodyTooLarge and answered on its own (FastAPI turns any error while
                    # reading a body into "400 There was an error parsing the body"): answer 413 instead.
                    replaced = True
                    return await _reply_413(send, limit)
            if not replaced:
                await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reply_413(send, limit)
