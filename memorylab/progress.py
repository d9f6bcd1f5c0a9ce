"""Progress bars that read well both in a terminal and from inside a Ray worker.

Inside a Ray worker a plain tqdm writes carriage returns into the driver's log stream, one garbled line
per refresh; Ray's tqdm_ray sends the bar's state to the driver, which draws it properly.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator


def _in_ray_worker() -> bool:
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


class _Bar:
    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def update(self, n: int = 1, **postfix: float) -> None:
        if self._bar is None:
            return
        if postfix and hasattr(self._bar, "set_postfix"):
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(n)


@contextlib.contextmanager
def progress_bar(total: int, desc: str, initial: int = 0, enabled: bool = True) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None)
        return
    if _in_ray_worker():
        from ray.experimental.tqdm_ray import tqdm as bar_cls
        bar = bar_cls(total=total, desc=desc)
        bar.update(initial)
    else:
        from tqdm.auto import tqdm as bar_cls
        bar = bar_cls(total=total, desc=desc, initial=initial, mininterval=1.0, dynamic_ncols=True)
    try:
        yield _Bar(bar)
    finally:
        bar.close()
