"""Where two recorded configurations differ, as dotted paths: what a resume compares against its record.

A key the record lacks is not a difference (a field added to memorylab since the record was written, at its
default); a list that changed length differs as a whole.
"""

from __future__ import annotations

from typing import Any, Iterator


def differences(recorded: Any, now: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, recorded value, value now) of every setting that differs, in the order of `now`."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in now:
            if key in recorded:
                yield from differences(recorded[key], now[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(recorded, list) and isinstance(now, list) and len(recorded) == len(now):
        for i, (a, b) in enumerate(zip(recorded, now)):
            yield from differences(a, b, f"{prefix}.{i}" if prefix else str(i))
    elif recorded != now:
        yield prefix, recorded, now
