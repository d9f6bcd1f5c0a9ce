"""Shared by every test folder."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Test models are so small that thread start-up costs more than it saves on 2 cores, and one thread
    # keeps float reductions in one order. Session-scoped autouse runs before any session fixture that
    # trains a model. (Ray workers are other processes; their threads follow the scenario's resources.)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
