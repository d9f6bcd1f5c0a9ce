"""The Ingress deployment: the FastAPI app (the memory routes, the OpenAI-compatible routes, auth, limits, error
mapping) and the retriever (embedder + LanceDB store, serve/retriever.py) in one replica, the only writer; the
MemoryAgent (decisions, reranking, answers) and the Generator are deployments it calls. A plain search never
leaves this replica."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve

from memorylab.schema.memory_agent import GeneratorConfig, MemorySettings, ServeSettings
from memorylab.serve.auth import KeyRing
from memorylab.serve.deps import Unauthorized, tenant_of
from memorylab.serve.error_replies import ERROR_REPLIES, OPENAI_ERROR_REPLIES
from memorylab.serve.generator import text_generator
from memorylab.serve.limits import BodyLimit
from memorylab.serve.memory_routes import memory_router
from memorylab.serve.openai_routes import openai_router
from memorylab.serve.retriever import Retriever


@dataclass(frozen=True)
class IngressConfig:
    """The Ingress replica's settings, typed, as build_app takes them from the scenario."""

    folder: str  # where the store lives (folder/memory)
    model_name: str  # the name /v1/models serves the generator under
    memory: MemorySettings
    generation: GeneratorConfig
    serve: ServeSettings  # without api_keys: `keys` holds the keys in force
    keys: dict[str, str] = field(default_factory=dict)  # key -> tenant
    device: str = "cpu"
    num_threads: int = 1


fastapi_app = FastAPI(
    title="memorylab memory agents",
    description="Tenant-scoped agent memory (ADD/UPDATE/DELETE/NOOP, hybrid retrieval, reranking, adaptive "
                "retrieval) and OpenAI-compatible completions. Every route but /healthz needs "
                "`Authorization: Bearer <key>`.",
    version="1",
)


@fastapi_app.exception_handler(Unauthorized)
async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
    return JSONResponse({"detail": "missing or invalid API key (Authorization: Bearer <key>)"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


@fastapi_app.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, except that it cannot fail: the errors echo the input, and an input holding a lone
    surrogate ("\\ud800" in JSON, which pydantic refuses) cannot be encoded as UTF-8; those replies are
    written with ASCII escapes instead. NaN and Infinity (which Python's JSON parser accepts, and metadata
    refuses) have no JSON spelling at all: the inputs holding them are left out."""
    content = {"detail": jsonable_encoder(exc.errors())}
    try:
        return JSONResponse(content, status_code=422)
    except ValueError:  # UnicodeEncodeError is one
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False)
        except ValueError:
            text = json.dumps({"detail": [{k: v for k, v in e.items() if k != "input"} for e in content["detail"]]},
                              ensure_ascii=True)
        return Response(text, status_code=422, media_type="application/json")


@fastapi_app.get("/healthz", tags=["ops"])
async def healthz() -> Any:
    # Liveness only: it needs no key, so it tells nothing about any tenant.
    return {"status": "ok"}


fastapi_app.include_router(memory_router, responses=ERROR_REPLIES)
fastapi_app.include_router(openai_router, dependencies=[Depends(tenant_of)], responses=OPENAI_ERROR_REPLIES)
fastapi_app.add_middleware(BodyLimit)


@serve.deployment(name="Ingress", max_ongoing_requests=256)
@serve.ingress(fastapi_app)
class Ingress:
    """One replica (build_app pins it): it holds the store, and the store has one writer."""

    def __init__(self, config: IngressConfig, agent: Any, generator: Any) -> None:
        """`generator`: the Generator deployment's handle, or the `generator:` block of an OpenAI-compatible
        server (serve/generator.py); the OpenAI routes and `infer: true` writes ask it."""
        import torch

        torch.set_num_threads(config.num_threads)  # the embedder's threads follow the replica's num_cpus
        self.config = config
        self.lm = text_generator(generator)
        self.retriever = Retriever(config.folder, config.memory, batch_size=config.serve.retriever_batch_size,
                                   batch_wait_ms=config.serve.batch_wait_ms, generator=self.lm,
                                   device=config.device, serve_settings=config.serve)
        self.agent = agent
        self.keys = KeyRing(config.keys)
