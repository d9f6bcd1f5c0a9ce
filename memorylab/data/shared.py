"""Where data from elsewhere lives: $MEMORYLAB_SHARED_DATA/<relative> if set and present, else
<repository>/../shared/data/<relative> (the layout CI and the README use)."""

from __future__ import annotations

import os
from pathlib import Path

from memorylab.errors import MemorylabError

ENV_VAR = "MEMORYLAB_SHARED_DATA"


def find_shared(relative: str, *, repo_root: Path, folder: bool, what: str) -> Path:
    """The first existing candidate (a folder when `folder`, else a file), or an error naming both places.

    `repo_root` comes from the caller (its own __file__), so a test can pretend the caller lives elsewhere."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / relative)
    candidates.append((repo_root.parent / "shared" / "data" / relative).resolve())
    for path in candidates:
        if path.is_dir() if folder else path.is_file():
            return path
    looked = " and ".join(str(c) for c in candidates)
    top = relative.split("/")[0]
    hint = "" if os.environ.get(ENV_VAR) else f" (set ${ENV_VAR} to the folder holding {top}/)"
    raise MemorylabError(f"no {what} found; looked {'in' if folder else 'for'} {looked}{hint}.")
