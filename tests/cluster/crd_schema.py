"""Validate manifests against the KubeRay v1 CRDs in ../shared/data/kuberay-crds, the way the API server would,
only stricter about typos.

Each CRD's openAPIV3Schema is used by jsonschema with two changes:
- `required` names that have a `default` are dropped: the API server fills defaults in before it checks.
- `additionalProperties: false` is added wherever a schema lists `properties` and neither allows other keys
  nor says x-kubernetes-preserve-unknown-fields. The API server prunes unknown fields silently (or warns), so
  `rayStartParms:` would be applied as if it were not there; here it is an error naming the field.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

from memorylab.data.shared import find_shared

ROOT = Path(__file__).parents[2]
KINDS = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml",
         "RayService": "ray.io_rayservices.yaml"}
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are megabytes of YAML


def _strict(node: Any) -> Any:
    """The schema with both changes applied, recursively (a new structure; the loaded CRD is untouched)."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    props = node.get("properties")
    if isinstance(props, dict):
        if "required" in node:
            out["required"] = [name for name in node["required"] if "default" not in props.get(name, {})]
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def validator(kind: str) -> jsonschema.protocols.Validator:
    folder = find_shared("kuberay-crds", repo_root=ROOT, folder=True, what="KubeRay CRDs")
    crd = yaml.load((folder / KINDS[kind]).read_text(), Loader=Loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def field_path(parts: Any) -> str:
    """spec.workerGroupSpecs[0].template: dotted keys, list indexes in brackets."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _lines(error: jsonschema.ValidationError) -> Iterator[str]:
    where = field_path(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = error.schema.get("properties", {})
        for key in sorted(k for k in error.instance if k not in known):
            yield f"{where + '.' if where else ''}{key}: unknown field"
        return
    yield f"{where or '(top)'}: {error.message}"


def problems(doc: dict, source: str) -> list[str]:
    """Every problem of one manifest, one line each: `SOURCE: field.path: what is wrong`."""
    head = (doc.get("apiVersion"), doc.get("kind")) if isinstance(doc, dict) else (None, None)
    if head[0] != "ray.io/v1" or head[1] not in KINDS:
        return [f"{source}: apiVersion/kind: not a KubeRay v1 kind ({head[0]}/{head[1]})"]
    kind = head[1]
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{source}: {line}" for error in errors for line in _lines(error)]


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
