"""Serving load: closed-loop HTTP clients against the served agent's search (then adds), 10,000 memories.

Run: .venv/bin/python bench/serve_load.py            # --memories 10000 --seconds 8 --levels 1,4,16,64

Builds a memory_agent with a tiny generator (trained for a few steps; search never calls it), bulk-loads
`--memories` fact sentences of a large synthetic world into its LanceDB store (one write, before the app
starts), starts the app on a loopback port, then for each concurrency level runs that many closed-loop
clients (asyncio + httpx, each sends its next request when the previous one answered) for `--seconds`:
first POST /search with the world's questions, then POST /memories with new fact sentences (synchronous),
then the same with `"async": true` (levels up to 16: the latency of the 202, and the applied adds per second
from the loop's start until the last acknowledged add is applied).
Baseline, in the same run: the same retrieval in-process (MemoryService.search: embed the query, hybrid
search) called sequentially, no HTTP, no Serve. Goals on 2 cores: search p95 <= 50 ms at 4 clients and
>= 150 searches/s at 16 clients, with the default embedder (int8 per-channel; --float32 for the other);
acknowledged async add p95 <= 100 ms at 4 clients. ratio = searches/s at 16 clients over HTTP / in-process searches/s.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import yaml

QUANTIZE = "--float32" not in sys.argv  # the default int8 embedder (memory.retrieval.quantize_embedder)
INGRESS_CPUS = 1  # as scenarios/agent.yaml: the ingress holds the embedder, one torch thread
GOALS = {"p95_ms_c4": 50.0, "qps_c16": 150.0, "async_add_p95_ms_c4": 100.0}
KEY = "bench-key-0123456789"
TENANT, AGENT = "bench", "load"


def scenario(folder: Path) -> Path:
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "name": "serve_load", "kind": "memory_agent", "seed": 0,
        "world": {"num_people": 12, "forget": 2, "holdout": 2, "canaries": 0},
        "model": {"tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                           "vocab_size": 400}},
        "train": {"steps": 5, "batch_size": 4, "seq_len": 64, "warmup_steps": 1, "checkpoint_every": 1000},
        "memory": {"adaptive": {"policy": "always"}, "reranker": {"name": "none"},
                   "retrieval": {"quantize_embedder": QUANTIZE}},
        "serve": {"api_keys": [{"tenant": TENANT, "key": KEY}]},
        "deployments": {"ingress": {"num_cpus": INGRESS_CPUS}, "agent": {"num_cpus": 0}, "generator": {"num_cpus": 0}},
    }))
    return path


def corpus(n: int) -> tuple[list[str], list[str], list[str]]:
    """n fact sentences to store, questions about them, and further facts for the add phase."""
    from memorylab.data import build_world
    from memorylab.data.templates import ATTRIBUTES
    from memorylab.schema.common import WorldConfig

    people = n // len(ATTRIBUTES) + 200
    world = build_world(WorldConfig(num_people=people, forget=1, holdout=1, canaries=0, paraphrases=1), seed=0)
    facts = [f.text for split in ("forget", "retain", "holdout") for f in world.facts(split)]
    questions = [qa.question for split in ("forget", "retain") for qa in world.qa(split)]
    return facts[:n], questions[:4000], facts[n:]


def bulk_load(folder: Path, texts: list[str]) -> float:
    from memorylab.memory.embedder import Embedder
    from memorylab.memory.records import MemoryRecord
    from memorylab.memory.store import MemoryStore

    start = time.perf_counter()
    from memorylab.serve.retriever import same_embedder

    embedder = Embedder(batch_size=256, quantize=QUANTIZE)
    vectors = embedder.embed(texts)
    store = MemoryStore(folder / "memory")
    same_embedder(store.path, embedder.name, False)
    store.add_many([MemoryRecord(id="", tenant=TENANT, agent=AGENT, text=t, created_at=0.0, updated_at=0.0,
                                 source="bench") for t in texts], vectors)
    store.close()  # the served replica, another process, writes it next
    return time.perf_counter() - start


def in_process_baseline(folder: Path, questions: list[str], seconds: float) -> dict:
    """The same retrieval without HTTP or Serve: MemoryService.search, one query at a time."""
    import torch

    from memorylab.schema.memory_agent import MemorySettings
    from memorylab.serve.retriever import MemoryService

    torch.set_num_threads(1)  # as the Retriever replica (num_cpus -> torch threads)
    settings = MemorySettings()
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"quantize_embedder": QUANTIZE})})
    service = MemoryService(folder, settings)
    for q in questions[:20]:
        service.search(TENANT, AGENT, q, 5)
    latencies, i, end = [], 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        service.search(TENANT, AGENT, questions[i % len(questions)], 5)
        latencies.append((time.perf_counter() - t) * 1000)
        i += 1
    service.store.close()
    return {"qps": len(latencies) / seconds, "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)), "requests": len(latencies)}


async def closed_loop(url: str, clients: int, seconds: float, make_request, ok: int = 200,
                      replies: Optional[list] = None) -> dict:
    """`clients` closed loops for `seconds`; an answer with status `ok` counts (its JSON body is appended to
    `replies` when given), any other is an error."""
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                 timeout=60) as http:
        end = time.perf_counter() + seconds
        counter = iter(range(10**9))

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                method, path, body = make_request(next(counter))
                t = time.perf_counter()
                reply = await http.request(method, path, json=body)
                if reply.status_code == ok:
                    latencies.append((time.perf_counter() - t) * 1000)
                    if replies is not None:
                        replies.append(reply.json())
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {"clients": clients, "qps": len(latencies) / elapsed, "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)), "requests": len(latencies), "errors": errors}


async def async_adds(url: str, clients: int, seconds: float, make_request) -> dict:
    """The closed loop of `async: true` adds (latency of the 202), then how fast the replica applied them: the
    acknowledged adds over the time from the loop's start until the last of them was applied."""
    import httpx

    replies: list = []
    began = time.perf_counter()
    point = await closed_loop(url, clients, seconds, make_request, ok=202, replies=replies)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as http:
        # One agent's adds apply in order: once the last acknowledged is applied, all are.
        last = replies[-1]["event_id"] if replies else None
        while last and (await http.get(f"/v1/agents/{AGENT}/events/{last}")).json()["status"] == "queued":
            await asyncio.sleep(0.05)
        failed = 0
        for reply in replies[:: max(1, len(replies) // 50)]:  # a sample: every one applied, none failed
            event = (await http.get(f"/v1/agents/{AGENT}/events/{reply['event_id']}")).json()
            failed += event["status"] != "applied"
    elapsed = time.perf_counter() - began
    return {**point, "applied_per_s": len(replies) / elapsed, "failed_in_sample": failed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--levels", default="1,4,16,64")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--phases", default="search,add,adds",
                        help="which closed loops to run: search, add (synchronous adds), adds (async: true: "
                             "acknowledged latency, then applied adds/s), health (GET /healthz: the serving floor)")
    parser.add_argument("--float32", action="store_true",
                        help="serve with the float32 embedder (memory.retrieval.quantize_embedder: false)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    import ray

    from memorylab.cluster.connect import connect
    from memorylab.serve.launch import start_agent, stop_agent

    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        folder = Path(tmp)
        facts, questions, new_facts = corpus(args.memories)
        load_s = bulk_load(folder, facts)
        print(f"bulk-loaded {len(facts)} memories in {load_s:.1f} s", file=sys.stderr)
        baseline = in_process_baseline(folder, questions, args.seconds)
        print(f"in-process: {baseline}", file=sys.stderr)

        connect(None, 2)
        try:
            url = start_agent(str(scenario(folder)), port=args.port, folder=str(folder))
            search_path = f"/v1/agents/{AGENT}/search"

            def search(i: int):
                return "POST", search_path, {"query": questions[i % len(questions)], "top_k": 5}

            def add(i: int):
                return "POST", f"/v1/agents/{AGENT}/memories", {
                    "messages": [{"role": "user", "content": new_facts[i % len(new_facts)]}]}

            asyncio.run(closed_loop(url, 4, 2.0, search))  # warm-up: connections, batcher, caches
            def health(i: int):  # no work behind it: what HTTP, the proxy and the replica cost by themselves
                return "GET", "/healthz", None

            def add_async(i: int):
                return "POST", f"/v1/agents/{AGENT}/memories", {
                    "messages": [{"role": "user", "content": new_facts[-1 - i % len(new_facts)]}], "async": True}

            curve = {"search": [], "add": [], "adds": [], "health": []}
            for phase, make in (("search", search), ("add", add), ("adds", add_async), ("health", health)):
                if phase not in args.phases.split(","):
                    continue
                for clients in levels:
                    if phase == "adds" and clients > 16:
                        continue  # a backlog of thousands would only measure the queue's bound (429)
                    if phase == "adds":
                        point = asyncio.run(async_adds(url, clients, args.seconds, make))
                    else:
                        point = asyncio.run(closed_loop(url, clients, args.seconds, make))
                    curve[phase].append(point)
                    print(f"{phase:6s} c={clients:3d}  {point['qps']:7.1f}/s  p50 {point['p50_ms']:6.1f} ms  "
                          f"p95 {point['p95_ms']:6.1f} ms  errors {point['errors']}", file=sys.stderr)
        finally:
            stop_agent()
            ray.shutdown()

    at = {p["clients"]: p for p in curve["search"]}
    p95_c4 = at.get(4, {}).get("p95_ms")
    qps_c16 = at.get(16, {}).get("qps")
    async_c4 = {p["clients"]: p for p in curve["adds"]}.get(4, {})
    met = [p95_c4 is not None and p95_c4 <= GOALS["p95_ms_c4"], qps_c16 is not None and qps_c16 >= GOALS["qps_c16"]]
    if "adds" in args.phases.split(","):
        met.append(async_c4.get("p95_ms") is not None and async_c4["p95_ms"] <= GOALS["async_add_p95_ms_c4"])
    result = {"bench": "serve_load", "ratio": round(qps_c16 / baseline["qps"], 3) if qps_c16 else None,
              "p95_ms_c4": p95_c4, "qps_c16": qps_c16, "async_add_p95_ms_c4": async_c4.get("p95_ms"),
              "applied_adds_per_s_c4": async_c4.get("applied_per_s"), "goals": GOALS, "goals_met": all(met),
              "in_process": baseline, "memories": len(facts), "embedder": "int8 per-channel" if QUANTIZE else "float32",
              "curve": curve}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
