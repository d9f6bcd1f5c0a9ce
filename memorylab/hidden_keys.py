"""API keys never leave in a dump: a scenario's `serve.api_keys` serialize hidden (report.json, report.md,
config-out, logs), except in the one dump that hands the scenario to Serve (`context=REVEAL_KEYS`)."""

from __future__ import annotations

from typing import Any

# What a key dumps as (report.json, logs, config-out): too short to be a key, so a dump that is read back as a
# scenario fails validation rather than serving with it.
HIDDEN_KEY = "***"
REVEAL_KEYS = {"reveal_keys": True}  # model_dump(context=REVEAL_KEYS): only where the keys are put to use


def hide_keys(value: Any) -> Any:
    """`value` (a scenario's mapping as loaded, or anything holding one) with every `api_keys` entry's key
    hidden: what reports record of a mapping pydantic never serialized (an inline agent, the raw config)."""
    if isinstance(value, dict):
        return {k: ([{**e, "key": HIDDEN_KEY} if isinstance(e, dict) and "key" in e else e for e in v]
                    if k == "api_keys" and isinstance(v, list) else hide_keys(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_keys(v) for v in value]
    return value
