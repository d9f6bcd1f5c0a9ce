"""One unlearning job as a Ray task: a method's `unlearn` on one forget set, in a worker with the unlearner's
resources. A sustainability chain passes the previous request's result as `start`, a task argument of its
own, so that Ray waits for it and hands over its value."""

from __future__ import annotations

import dataclasses
from typing import Optional

from memorylab.unlearn.method import MethodSettings, UnlearnedModel, UnlearnJob


def unlearn_task(method: MethodSettings, job: UnlearnJob, threads: int,
                 start: Optional[UnlearnedModel] = None) -> UnlearnedModel:
    """Runs in a Ray worker (or in-process in tests)."""
    import torch

    torch.set_num_threads(threads)
    return method.unlearn(dataclasses.replace(job, start=start) if start is not None else job)
