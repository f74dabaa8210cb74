"""Fixtures shared by several test files (opt in with ``pytestmark = pytest.mark.usefixtures(...)``)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of small tensors: on a busy 2-core machine two threads only add spin-waits,
    which made some tests ~100x slower (a 2 s overfit took 80 s). Restored afterwards for the rest of the suite."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
