"""A checkpoint keeps the global generators a run's own code may draw from: Python's
`random` and numpy's, restored exactly on resume; numpy's only when the process had
imported `numpy.random` (nothing drew from it otherwise), so a run never imports it just
to save its state."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import torch

from agem.runs import checkpoint

_FRESH = """
import sys, random, torch
from agem.runs import checkpoint
state = checkpoint._global_rng(torch.device("cpu"))
first = random.random()
checkpoint._set_global_rng(state, torch.device("cpu"))
print(state["numpy"] is None, "numpy.random" in sys.modules, random.random() == first)
"""


def test_python_and_numpy_generators_are_restored_exactly() -> None:
    np.random.seed(3)
    random.seed(4)
    state = checkpoint._global_rng(torch.device("cpu"))
    assert state["numpy"] is not None
    expected = (random.random(), np.random.rand(3).tolist(), np.random.normal())
    np.random.seed(99)
    random.seed(99)
    checkpoint._set_global_rng(state, torch.device("cpu"))
    assert (random.random(), np.random.rand(3).tolist(), np.random.normal()) == expected


def test_a_process_that_never_imported_numpy_random_saves_no_numpy_state() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.split() == ["True", "False", "True"]
