"""Waiting for a run's Ray tasks: a progress bar, intermediate results passed on, and no task left behind."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import ray

from memorylab.progress import progress_bar

POLL_S = 0.5  # how often a waiting run with intermediate results looks for new ones


def progress_queue() -> Any:
    """A Ray queue that tasks put their intermediate results on, for the waiting run to poll."""
    from ray.util.queue import Queue

    # A queue is an actor; with the default 1 CPU it would hold a core a task needs on a small Ray.
    return Queue(actor_options={"num_cpus": 0})


def wait_all(refs: Sequence[Any], desc: str, poll: Optional[Callable[[], None]] = None) -> list[Any]:
    """The values of `refs` (ObjectRefs of tasks), in order, once all are done; a bar counts them. `poll` is
    called every POLL_S seconds while waiting and after the last task ends (to pass intermediate results on).

    If waiting ends early (a task failed, or a sweep trial that its scheduler stopped leaves through the
    report call inside `poll`), the tasks still running are cancelled: they would go on holding the
    resources that the next trial is given."""
    pending = list(dict.fromkeys(refs))
    try:
        with progress_bar(total=len(pending), desc=desc) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=None if poll is None else POLL_S)
                bar.update(len(ready))
                if poll is not None:
                    poll()
        return ray.get(list(refs))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
