"""How a deployment says no: a Refusal, returned rather than raised, that the routes turn into an HTTP error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Refusal:
    """A request the memory layer refused (unknown memory or agent: 404; a bad filter or cursor: 400).

    Returned, not raised: an exception crossing a deployment boundary is logged with its traceback by the
    replica, and these are everyday answers, not faults."""

    status: int
    detail: Any  # a sentence; a 422 carries FastAPI's list of {loc, msg, type}


def remote_message(error: BaseException) -> str:
    """The message of an error raised in another replica (a RayTaskError), without Ray's traceback."""
    cause = getattr(error, "cause", None)
    lines = str(cause if isinstance(cause, BaseException) else error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__
