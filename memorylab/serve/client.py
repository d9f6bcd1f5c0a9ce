"""A small synchronous HTTP client for the served agent (httpx: the real client path), timing each call.

Used by the agent-eval runner and the serving benchmark; errors become one sentence with the route and the
server's `detail`."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Optional

import httpx

from memorylab.errors import MemorylabError


class AgentClient:
    def __init__(self, url: str, api_key: str, timeout_s: float = 120.0) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s)
        self.latencies_ms: dict[str, list[float]] = defaultdict(list)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, kind: str, method: str, path: str, **kwargs: Any) -> Any:
        start = time.perf_counter()
        reply = self.http.request(method, path, **kwargs)
        self.latencies_ms[kind].append((time.perf_counter() - start) * 1000)
        if reply.status_code >= 400:
            try:
                detail = reply.json().get("detail")
            except ValueError:
                detail = reply.text[:200]
            raise MemorylabError(f"{method} {path}: HTTP {reply.status_code}: {detail}")
        return reply.json()

    def add(self, agent: str, messages: list[dict], *, infer: bool = False, metadata: Optional[dict] = None) -> list[dict]:
        body = {"messages": messages, "infer": infer, "metadata": metadata or {}}
        return self._call("add", "POST", f"/v1/agents/{agent}/memories", json=body)["results"]

    def search(self, agent: str, query: str, top_k: int = 10, **options: Any) -> dict:
        return self._call("search", "POST", f"/v1/agents/{agent}/search", json={"query": query, "top_k": top_k, **options})

    def chat(self, agent: str, question: str) -> dict:
        return self._call("chat", "POST", f"/v1/agents/{agent}/chat",
                          json={"messages": [{"role": "user", "content": question}]})

    def memories(self, agent: str) -> list[dict]:
        out, cursor = [], None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = self._call("list", "GET", f"/v1/agents/{agent}/memories", params=params)
            out += page["results"]
            cursor = page.get("next_cursor")
            if not cursor:
                return out
