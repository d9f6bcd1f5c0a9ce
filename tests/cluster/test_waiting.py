"""wait_all: every value in order, intermediate results polled, and no task left running when waiting ends early."""

from __future__ import annotations

import time

import pytest
import ray

from memorylab.cluster.waiting import wait_all


@ray.remote(num_cpus=0)
def _after(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def test_values_come_in_order_and_poll_runs_while_waiting(ray_cluster):
    polls = []
    assert wait_all([_after.remote(1.2, 1), _after.remote(0.0, 2)], "t", poll=lambda: polls.append(1)) == [1, 2]
    assert len(polls) >= 3  # every POLL_S while the slow task runs, and after the last one


def test_a_failing_poll_cancels_the_tasks_still_running(ray_cluster):
    slow = _after.remote(60.0, 1)

    def stop() -> None:  # as a sweep trial that ASHA stopped leaves through its report call
        raise SystemExit(0)

    began = time.perf_counter()
    with pytest.raises(SystemExit):
        wait_all([slow], "t", poll=stop)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(slow, timeout=30)
    assert time.perf_counter() - began < 30
