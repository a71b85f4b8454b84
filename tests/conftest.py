"""Fixtures shared by several test files."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread_module():
    """torch on one thread for a whole test file: its models are tiny, so a second thread
    only adds synchronisation (and spins while other processes hold the CPU). Restored
    afterwards for the other files. Use: ``pytestmark = pytest.mark.usefixtures(...)``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
