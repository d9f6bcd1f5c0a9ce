"""A run's folder: marked as memorylab's, so that only folders memorylab wrote are ever deleted, and set aside
(not deleted) by `--overwrite` until the new run has written into it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

from memorylab.errors import MemorylabError

MARKER = ".memorylab-run"  # written into every run folder; only such folders are ever deleted


def clear_run_folder(folder: Path) -> None:
    """Delete a previous run's folder, but never a folder memorylab did not create (think `--out .`)."""
    import shutil

    _check_ours(folder)
    shutil.rmtree(folder)


def _check_ours(folder: Path) -> None:
    if any(folder.iterdir()) and not (folder / MARKER).exists():
        raise MemorylabError(f"{folder} is not empty and was not written by memorylab; "
                             "refusing to delete it (choose another --out)")


def previous_run_aside(folder: Path) -> Path:
    """Where `--overwrite` keeps the previous run until the new one has written into the folder."""
    return folder.parent / f".{folder.name}.memorylab-previous"


def _set_aside(folder: Path) -> Optional[Path]:
    """Move a previous run (memorylab's only) aside; None when there is none to keep."""
    _check_ours(folder)
    aside = previous_run_aside(folder)
    if aside.exists():  # left by an overwrite that was killed after its run wrote: that run replaced it
        clear_run_folder(aside)
    folder.rename(aside)
    return aside


def _recover_aside(folder: Path) -> None:
    """An overwrite killed (SIGKILL) before its run wrote anything left the previous run aside: put it back;
    one killed after its run wrote left a previous run that is replaced: delete it."""
    aside = previous_run_aside(folder)
    if not aside.is_dir() or not (aside / MARKER).exists():
        return
    if holds_only_marker(folder):
        clear_run_folder(folder)
    if folder.exists():
        clear_run_folder(aside)
    else:
        aside.rename(folder)


def holds_only_marker(folder: Path) -> bool:
    """True for a run folder that a run marked and then wrote nothing into (it failed before starting)."""
    return folder.is_dir() and [p.name for p in folder.iterdir()] == [MARKER]


@contextlib.contextmanager
def marked_folder(folder: Path, kind: str, *, overwrite: bool = False) -> Iterator[Path]:
    """The run folder for the length of a run: created and marked as memorylab's.

    With `overwrite` a previous run is moved aside (a hidden sibling) and deleted only once the new run has
    written into the folder, or restored when the new run fails before that (an unreachable cluster).
    A run that fails before writing anything into the folder (an unreachable cluster, a `--resume` of a folder
    that holds no run) takes back the marker it added, and the folder too when it made it: the next run must not
    be told that the folder is in the way, and a folder of someone else's files must not become deletable."""
    _recover_aside(folder)
    aside = _set_aside(folder) if overwrite and folder.exists() else None
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    before = _names_besides_marker(folder)
    ours = not marker.exists() or not before  # a lone marker is the remnant of a run that never began
    marker.write_text(f"{kind}\n")
    try:
        yield folder
    except BaseException:
        wrote = _names_besides_marker(folder) != before
        if ours and not wrote:
            marker.unlink(missing_ok=True)
            if created and not any(folder.iterdir()):
                folder.rmdir()
        if aside is not None and not wrote and not folder.exists():
            aside.rename(folder)  # the new run never began: the previous one is as it was
            aside = None
        raise
    finally:
        if aside is not None:
            clear_run_folder(aside)


def _names_besides_marker(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)
