"""`build_app(args)`: the one builder of the served memory agent, shared by `memorylab serve`, `serve run` /
`serve deploy` and a KubeRay RayService (`import_path: memorylab.serve:build_app`).

args (validated): `scenario` — a memory_agent scenario file path or the scenario inline; optional `folder`
(where the store and the generator live; default: the scenario's serve.folder, else runs/<name>) and
`overrides` (`a.b=value` strings, as `--set`). Deployments: Ingress (FastAPI + the retriever: embedder and
LanceDB store, the one writer) -> MemoryAgent (adaptive decision, reranking, answers) -> Generator.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.errors import MemorylabError
from memorylab.schema.common import IN_JOINED_RAY
from memorylab.schema.memory_agent import MemoryAgentScenario
from memorylab.serve.auth import check_exposed_keys, resolve_keys

log = logging.getLogger("memorylab.serve")


class BuildArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: Union[str, dict[str, Any]] = Field(..., description="memory_agent scenario: file path or inline")
    folder: Optional[str] = None
    overrides: list[str] = Field(default_factory=list)
    host: Optional[str] = Field(None, description="where Serve's proxy listens (default: serve.host): a host other "
                                                  "machines reach refuses the demo key and short keys")


def load_agent_scenario(source: Union[str, dict, MemoryAgentScenario], overrides: list[str] = ()) -> MemoryAgentScenario:
    """A memory_agent scenario from a path, a mapping or the model itself; any other kind is an error."""
    if isinstance(source, MemoryAgentScenario):
        return source
    if isinstance(source, dict):
        from pydantic import ValidationError

        try:
            scenario = MemoryAgentScenario.model_validate(source, context=IN_JOINED_RAY)  # in a running Ray
        except ValidationError as e:
            first = e.errors()[0]
            raise MemorylabError(f"scenario: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    else:
        from memorylab.scenario_loader import load_scenario

        scenario = load_scenario(source, overrides, joins_ray=True)
    if scenario.kind != "memory_agent":
        raise MemorylabError(f"scenario {source}: kind is '{scenario.kind}', serving needs 'memory_agent'")
    return scenario


def serve_folder(scenario: MemoryAgentScenario, folder: Optional[str] = None) -> Path:
    return Path(folder or scenario.serve.folder or Path("runs") / scenario.name).resolve()


def build_app(args: Union[dict, BuildArgs]) -> Any:
    """The Serve application of a memory_agent scenario (trains the generator first when it is missing; with
    generator.source openai, checks that its server answers and gives what the agent reads)."""
    from memorylab.serve.agent import MemoryAgent
    from memorylab.serve.generator import Generator
    from memorylab.serve.generator_model import generator_speculative, prepare_generator
    from memorylab.serve.ingress import Ingress, IngressConfig

    args = args if isinstance(args, BuildArgs) else BuildArgs.model_validate(args)
    scenario = load_agent_scenario(args.scenario, args.overrides)
    keys = resolve_keys([(k.tenant, k.key) for k in scenario.serve.api_keys])
    check_exposed_keys(args.host or scenario.serve.host, keys)
    folder = serve_folder(scenario, args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not keys:
        log.warning("no API keys: every request will get 401; set serve.api_keys or MEMORYLAB_API_KEYS")

    res = scenario.deployments
    if scenario.generator.source == "openai":
        # No Generator deployment: the agent and the Ingress each reach the server with their own client.
        check_openai_generator(scenario)
        generator: Any = scenario.generator
    else:
        generator = Generator.options(ray_actor_options=actor_options(res.generator),
                                      num_replicas=scenario.serve.generator_replicas).bind(
            prepare_generator(scenario, folder), backend=scenario.model.backend, dtype=scenario.model.dtype,
            device=device_for(res.generator, scenario.model.device), num_threads=torch_threads(res.generator),
            seed=scenario.seed, speculative=generator_speculative(scenario, folder))
    agent = MemoryAgent.options(ray_actor_options=actor_options(res.agent)).bind(
        generator, scenario.memory, scenario.generator)
    config = IngressConfig(folder=str(folder), model_name=scenario.name, memory=scenario.memory,
                           generation=scenario.generator, serve=scenario.serve.model_copy(update={"api_keys": []}),
                           keys=keys, device=device_for(res.ingress, "auto"), num_threads=torch_threads(res.ingress))
    # One Ingress replica: it holds the store (see retriever.py), and the store has exactly one writer.
    return Ingress.options(ray_actor_options=actor_options(res.ingress), num_replicas=1).bind(config, agent, generator)


def check_openai_generator(scenario: MemoryAgentScenario) -> None:
    """Refuse, before anything is deployed, an OpenAI-compatible generator that is down or cannot give what the
    configured policy (the answer's log-probabilities) or reranker (one token's top alternatives) reads."""
    from memorylab.errors import GeneratorUnavailable
    from memorylab.models.openai_generator import OpenAIGenerator

    memory = scenario.memory
    listwise = memory.reranker.name == "listwise_first"
    try:
        OpenAIGenerator.from_config(scenario.generator).check(
            logprobs=memory.adaptive.policy == "confidence", top=memory.reranker.window if listwise else 0)
    except GeneratorUnavailable as e:
        raise MemorylabError(f"generator: {e}") from None
