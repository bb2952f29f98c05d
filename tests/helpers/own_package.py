"""A small package of a user's own code, `tests_pkg`, written into a folder by a test: a
model, a benchmark, a plugin with state and a strategy, and the entry points that
register them as `pip install` would (the `.dist-info` folder with `entry_points.txt`
that pip writes beside an installed package).

The folder goes on PYTHONPATH for the `agem` processes a test starts, so nothing is
installed into the test's environment and nothing needs removing afterwards.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

MODULE = '''
"""The code of a user of agem: a model, a benchmark, a plugin and a strategy."""

from pathlib import Path

import torch
from torch import nn

import agem
from agem.benchmarks import from_tensors
from agem.plugins import Plugin

WIDTH = 8  # the features of one input; edited by the resume test (a different shape)


class Net(nn.Module):
    """A small MLP of our own: agem passes input_size and num_classes."""

    def __init__(self, input_size, num_classes, hidden=16):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be positive, got {hidden}")
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(input_size, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.body(x)


def make(n_experiences=3, seed=0, size=80):
    """A benchmark of our own: in each experience, two classes told apart by one feature."""
    g = torch.Generator().manual_seed(seed)

    def part(e, n):
        x = torch.randn(n, WIDTH, generator=g)
        y = (x[:, e % WIDTH] > 0).long() + 2 * (e % 2)
        return x, y

    train = [part(e, size) for e in range(n_experiences)]
    test = [part(e, size // 2) for e in range(n_experiences)]
    return from_tensors(train=train, test=test)


def not_a_benchmark():
    return [1, 2, 3]


class Counter(Plugin):
    """Counts training iterations (its state is checkpointed) and writes the count to
    `path` after each experience."""

    def __init__(self, path, every=1):
        self.path = Path(path)
        self.every = every
        self.count = 0

    def after_training_iteration(self, strategy, **kwargs):
        self.count += 1

    def after_training_exp(self, strategy, **kwargs):
        self.path.write_text(str(self.count // self.every))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = int(state["count"])


class OwnNaive(agem.Naive):
    """A strategy of our own: naive fine-tuning with a scaled loss."""

    def __init__(self, model, optimizer, *, scale=1.0, **kwargs):
        loss = nn.CrossEntropyLoss()
        super().__init__(model, optimizer, criterion=lambda out, y: scale * loss(out, y), **kwargs)
        self.scale = scale
'''

ENTRY_POINTS = """
[agem.models]
tiny_net = tests_pkg.mod:Net

[agem.benchmarks]
tiny_bench = tests_pkg.mod:make

[agem.strategies]
own_naive = tests_pkg.mod:OwnNaive
"""


def write_package(root: Path) -> Path:
    """Write `tests_pkg` and its distribution metadata (with the entry points) into
    `root`; return `root`, the folder to put on PYTHONPATH."""
    package = root / "tests_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A user\'s own agem code."""\n')
    (package / "mod.py").write_text(textwrap.dedent(MODULE).lstrip())
    info = root / "tests_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tests-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS.lstrip())
    return root
