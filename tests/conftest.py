"""Shared test setup: one math thread per test process.

``make test`` runs two pytest workers on two cores; tiny tensors are fastest on one thread and
oversubscribed cores make torch many times slower.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
