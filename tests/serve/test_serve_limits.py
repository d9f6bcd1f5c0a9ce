"""The request-size limit (serve/limits.py) on tiny in-process apps, without Serve: a declared Content-Length
over the limit is refused before the body is read, a chunked body is counted as it arrives, and FastAPI's own
handling of a body it could not read does not turn the 413 into a 400."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from memorylab.serve.limits import BodyLimit

LIMIT = 1024

class Calls:
    def __init__(self) -> None:
        self.n = 0


def starlette_app(calls: Calls) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        calls.n += 1
        return JSONResponse({"bytes": len(await request.body())})

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])],
                     middleware=[Middleware(BodyLimit, max_bytes=LIMIT)])


class Query(BaseModel):
    query: str


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/search")
    async def search(body: Query) -> dict:
        return {"length": len(body.query)}

    app.add_middleware(BodyLimit, max_bytes=LIMIT)
    return app


def post(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(go())


def chunked(*parts: bytes):
    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: httpx sends Transfer-Encoding: chunked
        for part in parts:
            yield part

    return stream()


def test_bodies_up_to_the_limit_pass():
    calls = Calls()
    reply = post(starlette_app(calls), "/echo", content=b"x" * LIMIT)
    assert reply.status_code == 200 and reply.json() == {"bytes": LIMIT}, reply.text
    reply = post(starlette_app(calls), "/echo", content=chunked(b"x" * 500, b"y" * 524))
    assert reply.status_code == 200 and reply.json() == {"bytes": LIMIT}, reply.text


def test_declared_length_over_the_limit_is_refused_unread():
    calls = Calls()
    reply = post(starlette_app(calls), "/echo", content=b"x" * (LIMIT + 1))
    assert reply.status_code == 413, reply.text
    assert reply.json() == {"detail": f"request body larger than {LIMIT} bytes"}
    assert calls.n == 0, "the app must not run for a body refused on its Content-Length"


def test_chunked_body_over_the_limit_is_413():
    reply = post(starlette_app(Calls()), "/echo", content=chunked(*[b"x" * 300] * 4))
    assert reply.status_code == 413, reply.text


def test_chunked_body_over_the_limit_is_413_under_fastapi_too():
    # FastAPI catches any error while reading a body and answers 400 "There was an error parsing the body";
    # the limit must still answer 413.
    app = fastapi_app()
    reply = post(app, "/search", content=chunked(b'{"query": "', *[b"x" * 300] * 4, b'"}'),
                 headers={"Content-Type": "application/json"})
    assert reply.status_code == 413, f"HTTP {reply.status_code} {reply.text}"
    reply = post(app, "/search", content=chunked(b'{"query": "', b"x" * 100, b'"}'),
                 headers={"Content-Type": "application/json"})
    assert reply.status_code == 200 and reply.json() == {"length": 100}, reply.text


def test_a_content_length_that_lies_is_still_counted():
    # Raw ASGI: the header claims 10 bytes, the body brings 1200.
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": b"x" * 600, "more_body": True},
                {"type": "http.request", "body": b"x" * 600, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/echo", "raw_path": b"/echo", "query_string": b"", "root_path": "",
             "headers": [(b"content-length", b"10")], "server": ("test", 80), "client": ("test", 1)}
    asyncio.run(starlette_app(Calls())(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413], sent


def test_other_scopes_pass_through():
    seen: list[str] = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    async def nothing():  # pragma: no cover - never awaited
        return {}

    asyncio.run(BodyLimit(app)({"type": "lifespan"}, nothing, nothing))
    assert seen == ["lifespan"]
