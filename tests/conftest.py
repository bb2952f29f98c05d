"""Shared test setup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run faster on one intra-op thread, especially on small shared machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def _decoded_datasets_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Decoded-dataset caches go to a folder of this session (also for the processes
    the tests start), never beside test data or into ~/.cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AGEM_CACHE", str(tmp_path_factory.mktemp("decoded")))
    yield
    patch.undo()
