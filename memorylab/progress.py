"""Progress bars that read well both in a terminal and from inside a Ray worker.

In the driver a tqdm bar is drawn. Inside a Ray worker the output reaches the user through Ray's log
forwarding, which prints every carriage-return refresh as a new line; there a bar becomes a short log line
at most every 10% of the work or every 20 seconds, whichever comes first.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator, Optional

# A runner's intermediate results: on_progress(partial_report, step), e.g. for a sweep scheduler to read. It may
# carry `figures`, the metric names its reader needs: a runner may then measure only those on the way.
ProgressFn = Callable[[dict[str, Any], int], None]


def _in_ray_worker() -> bool:
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


class _LogLines:
    """A bar as log lines: `train target: 120/600 (20%) loss=1.23, 3.4 it/s`."""

    def __init__(self, total: int, desc: str, initial: int) -> None:
        self.total, self.desc, self.n = total, desc, initial
        self.started = self.last_time = time.monotonic()
        self.start_n = self.last_n = initial
        self.postfix: dict[str, float] = {}

    def set_postfix(self, postfix: dict[str, str], refresh: bool = False) -> None:
        self.postfix = postfix

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        step = max(1, self.total // 10)
        if self.n == self.total or self.n - self.last_n >= step or now - self.last_time >= 20:
            rate = (self.n - self.start_n) / max(now - self.started, 1e-9)
            extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
            print(f"{self.desc}: {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%){extra}, "
                  f"{rate:.1f} it/s", flush=True)
            self.last_time, self.last_n = now, self.n

    def close(self) -> None:
        pass


class Bar:
    def __init__(self, bar: Optional[Any]) -> None:
        self._bar = bar

    def update(self, n: int = 1, **postfix: float) -> None:
        if self._bar is None:
            return
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(n)


@contextlib.contextmanager
def progress_bar(total: int, desc: str, initial: int = 0, enabled: bool = True) -> Iterator[Bar]:
    if not enabled:
        yield Bar(None)
        return
    if _in_ray_worker():
        bar: Any = _LogLines(total, desc, initial)
    else:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, initial=initial, mininterval=1.0, dynamic_ncols=True)
    try:
        yield Bar(bar)
    finally:
        bar.close()
