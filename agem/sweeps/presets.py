"""The A-GEM paper's experimental protocols as ready-made two-phase sweeps.

Chaudhry, Ranzato, Rohrbach, Elhoseiny, "Efficient Lifelong Learning with A-GEM",
ICLR 2019 (arXiv:1812.00420). Its protocol (Section 2, "Learning protocol"; Section 6,
"Experiments", paragraph "Architectures" and "Datasets"; Appendix C, hyperparameter
grids) is: a stream of T = 20 tasks, of which the first T_CV = 3 are used only to choose
each method's hyperparameters, by the final average accuracy A_T; every method is then
trained on the remaining 17 tasks with the chosen values and reported as mean ± std
over 5 seeds. Every example is seen once (a single epoch), minibatches of 10, plain SGD.
Facts not stated in the text come from the authors' code (facebookresearch/agem,
`replicate_results_iclr19.sh`, `fc_permute_mnist.py`, `conv_split_cifar.py`,
`cross_validation_scripts/`): 1000 training examples per Permuted MNIST task, an
episodic memory of 25 examples per class (250 per MNIST task) and of 13 per class
(65 per CIFAR task), A-GEM reference batches of 256, the learning-rate grids
{0.0001, 0.001, 0.003, 0.01, 0.03, 0.1} (MNIST) and {0.001, ..., 1.0} (CIFAR), and the
EWC strength grid {1, 10, 1000, 10000}.

Methods: VAN (`naive`), EWC, GEM and A-GEM are the paper's. Replay (experience
replay with a reservoir of the same total size as A-GEM's memory) is not in the ICLR
paper; it is the baseline of the authors' follow-up ("On Tiny Episodic Memories in
Continual Learning", 2019) and is included as the usual reference point. The paper's
MULTI-TASK reference (one model trained on the data of all tasks) is `cumulative`:
joint training on everything seen so far, so that after the last experience the model
has been trained on all tasks' data together (it also gets an accuracy matrix, which
MULTI-TASK has not). PI, MAS, RWalk and PROG-NN have no counterpart in this library and
are not run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agem.sweeps.spec import SpecError, SweepSpec, build_spec

MNIST_LRS = [0.0001, 0.001, 0.003, 0.01, 0.03, 0.1]
CIFAR_LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
EWC_LAMBDAS = [1.0, 10.0, 1000.0, 10000.0]
SEEDS = [0, 1, 2, 3, 4]


@dataclass(frozen=True)
class Method:
    """A method of a protocol: fixed options, options chosen on the selection tasks, and
    options given per experience of the phase (multiplied by its experience count)."""

    name: str
    fixed: Mapping[str, Any]
    search: Mapping[str, Sequence[Any]]
    per_experience: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """A two-phase sweep: choose hyperparameters on the first `selection` experiences,
    report on the rest with `seeds`."""

    name: str
    summary: str
    base: Mapping[str, Any]
    methods: tuple[Method, ...]
    selection: int = 3
    seeds: tuple[int, ...] = tuple(SEEDS)
    selection_seeds: tuple[int, ...] = tuple(SEEDS)

    def with_overrides(self, overrides: Mapping[str, Any]) -> Protocol:
        """The protocol with base options replaced (e.g. a smaller `train_subset`), a
        searched option's list replaced (e.g. `lr = [0.1]`), and `seeds`,
        `selection_seeds` (a list or a count) or `selection` (a count) when given."""
        base = dict(self.base)
        methods = self.methods
        seeds, selection_seeds, selection = self.seeds, self.selection_seeds, self.selection
        for key, value in overrides.items():
            if any(key in m.search for m in methods):
                if not isinstance(value, list) or not value:
                    raise SpecError(f"{key} is searched: give a non-empty list, got {value!r}")
                methods = tuple(
                    Method(m.name, m.fixed, {**m.search, key: value}, m.per_experience)
                    if key in m.search
                    else m
                    for m in methods
                )
            elif key == "seeds":
                seeds = _seeds(key, value)
            elif key == "selection_seeds":
                selection_seeds = _seeds(key, value)
            elif key == "selection":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise SpecError(f"selection must be a positive integer, got {value!r}")
                selection = value
            else:
                base[key] = value
        return Protocol(self.name, self.summary, base, methods, selection, seeds, selection_seeds)

    @property
    def n_experiences(self) -> int:
        return int(self.base["n_experiences"])

    def _phase(
        self, experiences: str, count: int, seeds: Sequence[int], choices: Mapping[str, Any]
    ) -> SweepSpec:
        grids = []
        for method in self.methods:
            grid: dict[str, list[Any]] = {"strategy": [method.fixed["strategy"]]}
            grid.update({k: [v] for k, v in method.fixed.items() if k != "strategy"})
            grid.update({k: [v * count] for k, v in method.per_experience.items()})
            chosen = choices.get(method.name)
            for key, values in method.search.items():
                grid[key] = [chosen[key]] if chosen is not None else list(values)
            grid["seed"] = list(seeds)
            grids.append(grid)
        return build_spec({"base": {**self.base, "experiences": experiences}, "grid": grids})

    def selection_spec(self) -> SweepSpec:
        """The hyperparameter search on experiences 0..selection-1."""
        if not 0 < self.selection < self.n_experiences:
            raise SpecError(
                f"{self.name}: selection on {self.selection} of {self.n_experiences} "
                "experiences leaves none to report on"
            )
        return self._phase(f"0:{self.selection}", self.selection, self.selection_seeds, {})

    def report_spec(self, choices: Mapping[str, Mapping[str, Any]]) -> SweepSpec:
        """The reported runs on the remaining experiences with each method's choices."""
        missing = [m.name for m in self.methods if m.search and m.name not in choices]
        if missing:
            raise SpecError(f"no hyperparameters chosen for {', '.join(missing)}")
        count = self.n_experiences - self.selection
        experiences = f"{self.selection}:{self.n_experiences}"
        return self._phase(experiences, count, self.seeds, choices)


def _seeds(key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise SpecError(f"{key} must be a count or a list of integer seeds, got {value!r}")


def _methods(lrs: list[float], per_task_memory: int) -> tuple[Method, ...]:
    memory = {"patterns_per_experience": per_task_memory}
    return (
        Method("naive", {"strategy": "naive"}, {"lr": lrs}),
        Method("ewc", {"strategy": "ewc"}, {"lr": lrs, "ewc_lambda": EWC_LAMBDAS}),
        Method("gem", {"strategy": "gem", "memory_strength": 0.5, **memory}, {"lr": lrs}),
        Method("agem", {"strategy": "agem", "sample_size": 256, **memory}, {"lr": lrs}),
        Method(
            "replay",
            {"strategy": "replay"},
            {"lr": lrs},
            per_experience={"mem_size": per_task_memory},
        ),
        Method("cumulative", {"strategy": "cumulative"}, {"lr": lrs}),
    )


_MNIST_BASE: dict[str, Any] = {
    "n_experiences": 20,
    "train_subset": 1000,
    "model": "mlp",
    "hidden_sizes": [256, 256],
    "epochs": 1,
    "batch_size": 10,
    "lca_beta": 10,
}


def _pmnist(name: str, benchmark: str, summary: str) -> Protocol:
    return Protocol(
        name, summary, {"benchmark": benchmark, **_MNIST_BASE}, _methods(MNIST_LRS, 250)
    )


def agem_paper_pmnist() -> Protocol:
    """Permuted MNIST, the A-GEM paper's protocol (Section 6; Appendix C; Table 1/Fig. 1).

    20 tasks of 1000 examples, a 2x256 ReLU MLP with a single head, 250 memory examples
    per task, A-GEM sample size 256; selection on tasks 0-2, report on 3-19, 5 seeds.
    """
    return _pmnist(
        "agem-paper-pmnist",
        "permuted_mnist",
        "Permuted MNIST, 20 tasks (3 select, 17 report), MLP 2x256, 5 seeds",
    )


def agem_paper_pfmnist() -> Protocol:
    """The Permuted MNIST protocol of the A-GEM paper (Section 6; Appendix C) on
    Fashion-MNIST, whose files install offline (Debian's `dataset-fashion-mnist`)."""
    return _pmnist(
        "agem-paper-pfmnist",
        "permuted_fashion_mnist",
        "the Permuted MNIST protocol on Fashion-MNIST (offline), 5 seeds",
    )


def agem_paper_split_cifar() -> Protocol:
    """Split CIFAR-100, the A-GEM paper's protocol (Section 6; Appendix C).

    20 tasks of 5 classes with one head per task (task labels), the reduced ResNet-18
    of the GEM paper, all 2500 training images per task, 65 memory examples per task
    (13 per class), A-GEM sample size 256; selection on tasks 0-2, report on 3-19.
    """
    base = {
        "benchmark": "split_cifar100",
        "n_experiences": 20,
        "task_labels": True,
        "model": "resnet18",
        "epochs": 1,
        "batch_size": 10,
        "lca_beta": 10,
    }
    return Protocol(
        "agem-paper-split-cifar",
        "Split CIFAR-100, 20 tasks, one head per task, reduced ResNet-18, 5 seeds",
        base,
        _methods(CIFAR_LRS, 65),
    )


PRESETS = {
    "agem-paper-pmnist": agem_paper_pmnist,
    "agem-paper-split-cifar": agem_paper_split_cifar,
    "agem-paper-pfmnist": agem_paper_pfmnist,
}


def get_preset(name: str) -> Protocol:
    """The protocol registered as `name` (SpecError listing the names otherwise)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise SpecError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
