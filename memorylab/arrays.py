"""Arrays crossing a process boundary: numpy out (Ray and the assistant link ship numpy), torch back in."""

from __future__ import annotations

from typing import Any

import numpy as np


def tensor_from(a: Any) -> Any:
    """A torch tensor of an array that may have come back read-only (Ray hands results over zero-copy from its
    object store): copied then, since torch warns about (and must not write into) read-only memory. None
    stays None."""
    import torch

    if a is None:
        return None
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def array_from(t: Any) -> Any:
    """A numpy array of a (possibly accelerator) tensor, to send to another process; None stays None."""
    return None if t is None else t.detach().cpu().numpy()
