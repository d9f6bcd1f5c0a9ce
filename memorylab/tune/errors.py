"""Errors raised in Ray tasks and Tune trials, told in one line (the CLI's `error:` line, sweep.json's errors).

Ray wraps an error raised in a task or actor in a RayTaskError whose text is the remote traceback, with ANSI
colours and the task's name first; what the user can act on is its cause, or the traceback's last line.
"""

from __future__ import annotations

import re
from typing import Optional

from memorylab.errors import MemorylabError

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def cause_of(error: BaseException) -> BaseException:
    """The error a (possibly nested) Ray task error wraps, else the error itself."""
    seen = {id(error)}
    while getattr(error, "cause", None) is not None and type(error).__module__.startswith("ray."):
        error = error.cause
        if id(error) in seen:
            break
        seen.add(id(error))
    return error


def last_line(text: str) -> str:
    """The last line of `text` that says something (a traceback's last line is the error), ANSI stripped."""
    lines = [line.strip() for line in ANSI.sub("", text).splitlines()]
    return next((line for line in reversed(lines) if line and set(line) - set("^~-= ")), "")


def error_line(error: BaseException) -> str:
    """One line for an error: a MemorylabError's message, else `Type: message` of the cause a Ray error wraps
    (a multi-line message joined), else the last line of a Ray error's remote traceback."""
    cause = cause_of(error)
    if type(cause).__module__.startswith("ray."):  # its cause is gone (not picklable): its text is a traceback
        return last_line(str(cause))
    message = " ".join(line.strip() for line in ANSI.sub("", str(cause)).splitlines() if line.strip())
    return message if isinstance(cause, MemorylabError) else f"{type(cause).__name__}: {message}"


def user_facing(error: BaseException) -> Optional[BaseException]:
    """The cause of `error` when the user can act on it (a MemorylabError, an OSError), None for a bug."""
    cause = cause_of(error)
    return cause if isinstance(cause, (MemorylabError, OSError)) else None
