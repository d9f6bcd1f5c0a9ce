"""Search-space domains from YAML -> Ray Tune sample domains."""

from __future__ import annotations

from typing import Any

from memorylab.schema.sweep import Domain


def tune_domain(domain: Domain) -> Any:
    from ray import tune

    if domain.choice is not None:
        return tune.choice(domain.choice)
    if domain.grid is not None:
        return tune.grid_search(domain.grid)
    if domain.uniform is not None:
        return tune.uniform(*domain.uniform)
    if domain.loguniform is not None:
        return tune.loguniform(*domain.loguniform)
    low, high = domain.randint  # type: ignore[misc]
    return tune.randint(low, high + 1)  # the YAML range includes its high end; Tune's excludes it


def param_space(space: dict[str, Domain]) -> dict[str, Any]:
    """Flat: Tune keys are the dotted paths themselves, so results and tables show them as written."""
    return {path: tune_domain(domain) for path, domain in space.items()}
