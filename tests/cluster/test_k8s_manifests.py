"""k8s/: every manifest validates against the KubeRay v1 CRDs (strictly: a typo is an error naming the field),
and what the manifests say inside strings and across files holds: serveConfigV2 builds the agent, the RayJob's
entrypoint names a scenario of this repository that loads, every pod mounts the shared claim and runs the
image the Dockerfile builds, with the Ray version the project is tested with."""

from __future__ import annotations

import copy
import importlib
import re
import shlex
import sys
from pathlib import Path
from typing import Iterator

import pytest
import ray
import typer
import yaml

from memorylab.cli import app
from memorylab.scenario_loader import load_scenario, load_scenario_and_dict
from memorylab.serve.app import BuildArgs, load_agent_scenario
from memorylab.serve.auth import ENV_VAR as API_KEYS_VAR
from memorylab.serve.config_out import check_serve_config, serve_config
from tests.cluster.crd_schema import ROOT, documents, problems

K8S = ROOT / "k8s"
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml"))
RAY_MANIFESTS = [n for n in MANIFESTS if documents(K8S / n)[0].get("apiVersion", "").startswith("ray.io/")]
VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
IMAGE = f"memorylab:{VERSION}"
MOUNT = "/mnt/memorylab"


def manifest(name: str) -> dict:
    (doc,) = documents(K8S / name)
    return doc


def cluster_spec(doc: dict) -> dict:
    spec = doc["spec"]
    return {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"),
            "RayService": spec.get("rayClusterConfig")}[doc["kind"]]


def groups(doc: dict) -> Iterator[tuple[str, dict]]:
    """(name, group spec) of the head and each worker group."""
    spec = cluster_spec(doc)
    yield "head", spec["headGroupSpec"]
    for group in spec.get("workerGroupSpecs", []):
        yield group["groupName"], group


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", (ROOT / "Dockerfile").read_text(), re.M))


def test_the_folder_holds_a_cluster_a_job_a_service_and_their_claim():
    kinds = sorted((doc["apiVersion"], doc["kind"]) for name in MANIFESTS for doc in documents(K8S / name))
    assert kinds == [("ray.io/v1", "RayCluster"), ("ray.io/v1", "RayJob"), ("ray.io/v1", "RayService"),
                     ("v1", "PersistentVolumeClaim")]


@pytest.mark.parametrize("name", RAY_MANIFESTS)
def test_each_manifest_validates_against_its_crd(name):
    assert problems(manifest(name), f"k8s/{name}") == []


# One typo per manifest, at the top, in a group and deep in a pod template (the core PodSpec part of the CRD).
TYPOS = [
    ("raycluster.yaml", ["spec", "headGroupSpec", "rayStartParams"], "rayStartParms"),
    ("raycluster.yaml", ["spec", "workerGroupSpecs", 1, "template", "spec", "containers", 0, "resources",
                         "limits"], "limit"),
    ("rayjob.yaml", ["spec", "shutdownAfterJobFinishes"], "shutdownAfterJobFinish"),
    ("rayjob.yaml", ["spec", "rayClusterSpec", "enableInTreeAutoscaling"], "enableInTreeAutoScaling"),
    ("rayservice.yaml", ["spec", "serveConfigV2"], "serveConfigv2"),
    ("rayservice.yaml", ["spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "volumes"], "volume"),
]


def field(path: list) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@pytest.mark.parametrize("name, path, typo", TYPOS, ids=[f"{n}:{t}" for n, _, t in TYPOS])
def test_a_broken_copy_fails_naming_the_field(tmp_path, name, path, typo):
    doc = manifest(name)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[typo] = parent.pop(path[-1])
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert problems(documents(broken)[0], str(broken)) == [f"{broken}: {field(path[:-1] + [typo])}: unknown field"]


@pytest.mark.parametrize("name", RAY_MANIFESTS)
def test_ray_start_params_are_strings(name):
    """KubeRay passes them to `ray start` as flags; YAML's 0 or true would not be a string."""
    doc = manifest(name)
    for group, spec in groups(doc):
        assert all(isinstance(v, str) for v in spec["rayStartParams"].values()), (name, group)
    broken = copy.deepcopy(doc)
    head = cluster_spec(broken)["headGroupSpec"]
    head["rayStartParams"]["num-cpus"] = 0
    where = {"RayCluster": "spec", "RayJob": "spec.rayClusterSpec", "RayService": "spec.rayClusterConfig"}[doc["kind"]]
    assert problems(broken, name) == [
        f"{name}: {where}.headGroupSpec.rayStartParams.num-cpus: 0 is not of type 'string'"]


def test_serve_config_v2_deploys_the_agent_scenario():
    config = yaml.safe_load(manifest("rayservice.yaml")["spec"]["serveConfigV2"])
    check_serve_config(config)  # Ray Serve's schema takes it, and drops no key of it
    (application,) = config["applications"]
    module, attr = application["import_path"].split(":")
    assert getattr(importlib.import_module(module), attr).__name__ == "build_app"
    args = BuildArgs.model_validate(application["args"])  # what build_app validates, in the same way
    scenario = load_agent_scenario(args.scenario, args.overrides)
    assert scenario.kind == "memory_agent" and args.folder.startswith(f"{MOUNT}/")
    # It is what `memorylab serve scenarios/agent.yaml --folder ... --config-out` writes, so it can be regenerated.
    agent, raw = load_scenario_and_dict(ROOT / "scenarios" / "agent.yaml")
    assert config == serve_config(agent, raw, folder=args.folder), (
        f"k8s/rayservice.yaml is stale: paste the output of `memorylab serve scenarios/agent.yaml --folder "
        f"{args.folder} --config-out FILE` (less its comments) under serveConfigV2")


def test_the_rayjob_runs_a_scenario_of_this_repository():
    spec = manifest("rayjob.yaml")["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] > 0
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["memorylab", "run"]
    command = typer.main.get_command(app).commands["run"]
    params = command.make_context("run", argv[2:]).params  # the CLI's own parser: unknown options fail here
    workdir = re.search(r"^WORKDIR (\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    in_image = Path(params["file"])
    assert in_image.is_relative_to(workdir), f"{in_image} is not in the image's {workdir}"
    scenario = load_scenario(ROOT / in_image.relative_to(workdir), params["overrides"])
    assert scenario.kind == "memorization"
    assert str(params["out"]).startswith(f"{MOUNT}/")  # the driver and the workers all see the report's folder


@pytest.mark.parametrize("name", RAY_MANIFESTS)
def test_pods_share_the_claim_and_run_the_image_with_sized_resources(name):
    doc = manifest(name)
    claim = manifest("storage.yaml")["metadata"]["name"]
    assert cluster_spec(doc)["rayVersion"] == dockerfile_args()["RAY_VERSION"]
    for group, spec in groups(doc):
        pod = spec["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        claimed = [n for n, v in volumes.items() if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
        assert claimed, (name, group)
        for container in pod["containers"]:
            assert container["image"] == IMAGE, (name, group)
            assert {"name": claimed[0], "mountPath": MOUNT} in container["volumeMounts"], (name, group)
            res = container["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and res["requests"] == res["limits"], (name, group)
            assert ("nvidia.com/gpu" in res["limits"]) == (group == "gpu"), (name, group)
            for env in container.get("env", []):  # the Secret feeds the variable build_app reads
                assert env["name"] == API_KEYS_VAR == env["valueFrom"]["secretKeyRef"]["key"]


def test_the_claim_is_shared_by_every_node():
    doc = manifest("storage.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "PersistentVolumeClaim")
    assert doc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_dockerfile_builds_on_the_ray_this_project_is_tested_with():
    args = dockerfile_args()
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM rayproject/ray:${RAY_VERSION}-${PYTHON}-gpu" in text
    assert args["RAY_VERSION"].split(".")[:2] == ray.__version__.split(".")[:2]
    assert args["PYTHON"] == f"py{sys.version_info.major}{sys.version_info.minor}"
    for copied in ("pyproject.toml", "memorylab", "scenarios"):
        assert re.search(rf"^COPY .*\b{copied}\b", text, re.M), copied
    assert re.search(r'pip install .*"ray\[[^\]]*\]==\$\{RAY_VERSION\}" "\.\$\{EXTRAS\}"', text)
    extras = re.search(r'^ARG EXTRAS="\[(\w+)\]"', text, re.M).group(1)
    assert extras in re.search(r"\[project.optional-dependencies\](.*?)\n\[", (ROOT / "pyproject.toml").read_text(),
                               re.S).group(1)


def test_the_readme_section_names_what_exists():
    from memorylab.cluster.jobs import runtime_env_json

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run on a cluster", 1)[1].split("\n## ", 1)[0]
    for path in set(re.findall(r"\bk8s/[\w.-]+\.yaml\b", section)):
        assert (ROOT / path).is_file(), path
    assert f"--runtime-env-json '{runtime_env_json()}'" in section
    for name in RAY_MANIFESTS:  # the names its kubectl commands use, and the Secrets it creates
        doc = manifest(name)
        assert doc["metadata"]["name"] in section, name
        assert f"secret generic {cluster_spec(doc)['authOptions']['secretName']} " in section, name
        for _, spec in groups(doc):
            for env in spec["template"]["spec"]["containers"][0].get("env", []):
                assert f"secret generic {env['valueFrom']['secretKeyRef']['name']} " in section, name
    assert "memorylab-head-svc" in section and "memorylab-agent-serve-svc" in section  # KubeRay's Service names
    assert IMAGE in section and "--config-out" in section
