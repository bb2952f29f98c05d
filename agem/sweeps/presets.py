"""Two papers' experimental protocols as ready-made two-phase sweeps.

**ICLR'19** (`agem-paper-*`): Chaudhry, Ranzato, Rohrbach, Elhoseiny, "Efficient Lifelong
Learning with A-GEM", ICLR 2019 (arXiv:1812.00420). A stream of T = 20 tasks; the first
T_CV = 3 choose each method's hyperparameters by the final average accuracy A_T; every
method is then trained on the other 17 with the chosen values and reported as mean ± std
over 5 seeds. One epoch, minibatches of 10, plain SGD. Facts the text leaves out come from
the authors' code as it stood for the paper (facebookresearch/agem up to January 2019,
`fc_permute_mnist.py`, `replicate_results.sh`, `cross_validation_scripts/`): every task
trains on the **whole** training set (their MNIST loader's 55,000 images; this library's
files hold all 60,000), an episodic memory of 25 examples per class (250 per MNIST task,
65 per CIFAR task), A-GEM reference batches of 256, the learning-rate grids
{0.0001, 0.001, 0.003, 0.01, 0.03, 0.1} (MNIST) and {0.001, ..., 1.0} (CIFAR), and the
regularisation grids of their cross-validation scripts.

**Tiny memories** (`tiny-memories-*`): Chaudhry, Rohrbach, Elhoseiny, Ajanthan, Dokania,
Torr, Ranzato, "On Tiny Episodic Memories in Continual Learning", 2019 (arXiv:1902.10486).
The same 20-task stream, but 1,000 training examples per task (the `--examples-per-task
1000` that the authors' repository gained in February 2019 for that paper) and a memory of
one example per class per task (`replicate_results_er.sh`: `MEM_SIZE=1`).

Methods (CLI names): VAN `naive`, EWC `ewc` with `ewc_mode = "running"` (the authors' EWC:
one running Fisher anchored at the last task's weights), PI `si`, MAS `mas`, RWALK `rwalk`,
PROG-NN `pnn`, GEM `gem`, A-GEM `agem`, Replay `replay` (experience replay with a
reservoir of the same total size as the episodic memory: the tiny-memories paper's ER, not
in the ICLR table) and MULTI-TASK `cumulative` (joint training on everything seen so far,
so that after the last task the model has been trained on all tasks' data together).
Progressive networks grow one column and one head per task, so they need task identity:
`pnn` runs with `task_labels = true` (as the authors' code feeds the task's column), the
only method of a preset that does; it is MLP-only here, so the CIFAR preset omits it.

`Method.published` holds the values the authors published for the reported phase, with
`Method.source` saying where each comes from (`agem sweep --preset NAME --published`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agem.sweeps.spec import SpecError, SweepSpec, build_spec

MNIST_LRS = [0.0001, 0.001, 0.003, 0.01, 0.03, 0.1]
CIFAR_LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
# cross_validation_scripts/cross_validate_lr_{ewc,pi,mas,rwalk}.sh (facebookresearch/agem)
EWC_LAMBDAS = [1.0, 10.0, 1000.0, 10000.0]
SI_LAMBDAS = [0.01, 0.1, 1.0, 10.0, 100.0]
MAS_LAMBDAS = [0.01, 0.1, 1.0, 10.0, 100.0]
RWALK_LAMBDAS = [0.1, 1.0, 10.0, 100.0]
SEEDS = [0, 1, 2, 3, 4]

ICLR_SCRIPT = "replicate_results_iclr19.sh (facebookresearch/agem)"
GEM_SCRIPT = "run_experiments.sh (facebookresearch/GradientEpisodicMemory)"
ER_SCRIPT = "replicate_results_er.sh (facebookresearch/agem)"
NOT_PUBLISHED = "not published by the authors; VAN's value (same network and optimiser)"


@dataclass(frozen=True)
class Method:
    """A method of a protocol: fixed options, options chosen on the selection tasks,
    options given per experience of the phase (multiplied by its experience count), and
    the values of the searched options the authors published, with where they come from."""

    name: str
    fixed: Mapping[str, Any]
    search: Mapping[str, Sequence[Any]]
    per_experience: Mapping[str, int] = field(default_factory=dict)
    published: Mapping[str, Any] | None = None
    source: str = ""


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

    def searched(self) -> set[str]:
        """The options some method chooses on the selection experiences."""
        return {key for m in self.methods for key in m.search}

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
                    dataclasses.replace(m, search={**m.search, key: value})
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
        if not 0 < self.selection < self.n_experiences:
            raise SpecError(
                f"{self.name}: {self.selection} selection experiences of "
                f"{self.n_experiences} leave none to report on"
            )
        count = self.n_experiences - self.selection
        experiences = f"{self.selection}:{self.n_experiences}"
        return self._phase(experiences, count, self.seeds, choices)

    def published_choices(self) -> dict[str, dict[str, Any]]:
        """Each method's published values (SpecError naming the methods that have none)."""
        missing = [m.name for m in self.methods if m.search and m.published is None]
        if missing:
            raise SpecError(
                f"{self.name}: no published hyperparameters for {', '.join(missing)}; "
                "run the selection phase (without --published)"
            )
        return {m.name: dict(m.published or {}) for m in self.methods if m.search}

    def published_spec(self) -> SweepSpec:
        """The reported runs with the published values, without a selection phase."""
        return self.report_spec(self.published_choices())


def _seeds(key: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise SpecError(f"{key} must be a count or a list of integer seeds, got {value!r}")


def _regularised(
    name: str,
    fixed: dict[str, Any],
    key: str,
    grid: list[float],
    lrs: list[float],
    published: tuple[float, float] | None,
    source: str,
) -> Method:
    """A method with a learning rate and one penalty weight to choose."""
    values = None if published is None else {"lr": published[0], key: published[1]}
    return Method(name, fixed, {"lr": lrs, key: grid}, published=values, source=source)


def _method(
    name: str,
    fixed: dict[str, Any],
    lrs: list[float],
    lr: float | None,
    source: str,
    per_experience: dict[str, int] | None = None,
) -> Method:
    """A method with only a learning rate to choose."""
    return Method(
        name,
        fixed,
        {"lr": lrs},
        per_experience or {},
        published=None if lr is None else {"lr": lr},
        source=source,
    )


def _iclr_methods(
    lrs: list[float], per_task_memory: int, published: Mapping[str, Any], *, pnn: bool
) -> tuple[Method, ...]:
    """The ICLR'19 table's methods plus Replay; `published` maps each to its values."""
    memory = {"patterns_per_experience": per_task_memory}
    p = published
    methods = [
        _method("naive", {"strategy": "naive"}, lrs, p["naive"], ICLR_SCRIPT),
        _regularised(
            "ewc",
            {"strategy": "ewc", "ewc_mode": "running"},
            "ewc_lambda",
            EWC_LAMBDAS,
            lrs,
            p["ewc"],
            ICLR_SCRIPT,
        ),
        _regularised("si", {"strategy": "si"}, "si_lambda", SI_LAMBDAS, lrs, p["si"], ICLR_SCRIPT),
        _regularised(
            "mas", {"strategy": "mas"}, "mas_lambda", MAS_LAMBDAS, lrs, p["mas"], ICLR_SCRIPT
        ),
        _regularised(
            "rwalk",
            {"strategy": "rwalk"},
            "rwalk_lambda",
            RWALK_LAMBDAS,
            lrs,
            p["rwalk"],
            ICLR_SCRIPT,
        ),
    ]
    if pnn:
        methods.append(
            _method("pnn", {"strategy": "pnn", "task_labels": True}, lrs, p["pnn"], ICLR_SCRIPT)
        )
    methods += [
        _method(
            "gem",
            {"strategy": "gem", "memory_strength": 0.5, **memory},
            lrs,
            p["gem"],
            GEM_SCRIPT,
        ),
        _method(
            "agem", {"strategy": "agem", "sample_size": 256, **memory}, lrs, p["agem"], ICLR_SCRIPT
        ),
        _method(
            "replay",
            {"strategy": "replay"},
            lrs,
            p["replay"],
            ER_SCRIPT,
            per_experience={"mem_size": per_task_memory},
        ),
        _method("cumulative", {"strategy": "cumulative"}, lrs, p["cumulative"], NOT_PUBLISHED),
    ]
    return tuple(methods)


# replicate_results_iclr19.sh, MNIST block (identical in replicate_results.sh of January
# 2019); GEM from GEM's own run_experiments.sh (MNIST_PERM: lr 0.1, memory_strength 0.5);
# Replay from replicate_results_er.sh (fc_permute_mnist.py --learning-rate 0.1); the
# MULTI-TASK learning rate is not in the authors' scripts: VAN's is used.
MNIST_PUBLISHED: dict[str, Any] = {
    "naive": 0.03,
    "ewc": (0.03, 10.0),
    "si": (0.1, 0.1),
    "mas": (0.1, 0.1),
    "rwalk": (0.1, 1.0),
    "pnn": 0.1,
    "gem": 0.1,
    "agem": 0.1,
    "replay": 0.1,
    "cumulative": 0.03,
}
# the same sources, CIFAR blocks (GEM: CIFAR_100i lr 0.1; ER: conv_split_cifar.py lr 0.1)
CIFAR_PUBLISHED: dict[str, Any] = {
    "naive": 0.01,
    "ewc": (0.03, 10.0),
    "si": (0.01, 0.1),
    "mas": (0.03, 0.1),
    "rwalk": (0.03, 1.0),
    "pnn": 0.03,
    "gem": 0.1,
    "agem": 0.03,
    "replay": 0.1,
    "cumulative": 0.01,
}


def _tiny_methods(lrs: list[float], per_task_memory: int) -> tuple[Method, ...]:
    """The tiny-memories paper's methods on this library: VAN, EWC, A-GEM, ER, MULTI-TASK,
    plus GEM. Only ER's learning rate is published (replicate_results_er.sh: 0.1)."""
    memory = {"patterns_per_experience": per_task_memory}
    return (
        _method("naive", {"strategy": "naive"}, lrs, None, ""),
        _regularised(
            "ewc",
            {"strategy": "ewc", "ewc_mode": "running"},
            "ewc_lambda",
            EWC_LAMBDAS,
            lrs,
            None,
            "",
        ),
        _method("gem", {"strategy": "gem", "memory_strength": 0.5, **memory}, lrs, None, ""),
        _method("agem", {"strategy": "agem", "sample_size": 256, **memory}, lrs, None, ""),
        _method(
            "replay",
            {"strategy": "replay"},
            lrs,
            0.1,
            ER_SCRIPT,
            per_experience={"mem_size": per_task_memory},
        ),
        _method("cumulative", {"strategy": "cumulative"}, lrs, None, ""),
    )


_MNIST_BASE: dict[str, Any] = {
    "n_experiences": 20,
    "model": "mlp",
    "hidden_sizes": [256, 256],
    "epochs": 1,
    "batch_size": 10,
    "lca_beta": 10,
}
TINY_EXAMPLES_PER_TASK = 1000  # fc_permute_mnist.py --examples-per-task (February 2019)
TINY_MEMORY_PER_TASK = 10  # replicate_results_er.sh MEM_SIZE=1 example per class, 10 classes


def _iclr(name: str, benchmark: str, summary: str) -> Protocol:
    base = {"benchmark": benchmark, **_MNIST_BASE}
    return Protocol(name, summary, base, _iclr_methods(MNIST_LRS, 250, MNIST_PUBLISHED, pnn=True))


def _tiny(name: str, benchmark: str, summary: str) -> Protocol:
    base = {"benchmark": benchmark, **_MNIST_BASE, "train_subset": TINY_EXAMPLES_PER_TASK}
    return Protocol(name, summary, base, _tiny_methods(MNIST_LRS, TINY_MEMORY_PER_TASK))


def agem_paper_pmnist() -> Protocol:
    """Permuted MNIST as in the A-GEM paper (ICLR'19; Section 6, Appendix C, Table 4).

    20 tasks, each the **whole** training set under one pixel permutation (about 6,000
    SGD steps per task), a 2x256 ReLU MLP with a single head (PROG-NN: one column and
    head per task), 250 memory examples per task, A-GEM reference batch 256; selection on
    tasks 0-2, report on 3-19, 5 seeds.
    """
    return _iclr(
        "agem-paper-pmnist",
        "permuted_mnist",
        "ICLR'19 A-GEM paper: Permuted MNIST, full training set per task, 20 tasks "
        "(3 select, 17 report), MLP 2x256, 10 methods, 5 seeds",
    )


def agem_paper_pfmnist() -> Protocol:
    """`agem-paper-pmnist` on Fashion-MNIST, whose files install offline (Debian's
    `dataset-fashion-mnist`): the ICLR'19 protocol, full training set per task."""
    return _iclr(
        "agem-paper-pfmnist",
        "permuted_fashion_mnist",
        "ICLR'19 A-GEM paper's protocol on Permuted Fashion-MNIST (offline), full "
        "training set per task, 10 methods, 5 seeds",
    )


def tiny_memories_pmnist() -> Protocol:
    """Permuted MNIST as in "On Tiny Episodic Memories in Continual Learning" (2019).

    The ICLR'19 stream and network with 1,000 training examples per task (100 SGD steps)
    and one memory example per class per task (10 per task; Replay's reservoir holds the
    same total). The ICLR paper's results need `agem-paper-pmnist` instead: on its issue
    tracker the first author answered a user who got 65% for A-GEM with this setting that
    the full training set must be used.
    """
    return _tiny(
        "tiny-memories-pmnist",
        "permuted_mnist",
        "Tiny-memories paper (2019): Permuted MNIST, 1,000 examples and 10 memory "
        "examples per task, 5 seeds",
    )


def tiny_memories_pfmnist() -> Protocol:
    """`tiny-memories-pmnist` on Fashion-MNIST (installs offline)."""
    return _tiny(
        "tiny-memories-pfmnist",
        "permuted_fashion_mnist",
        "Tiny-memories paper's protocol on Permuted Fashion-MNIST (offline), 1,000 "
        "examples and 10 memory examples per task, 5 seeds",
    )


def agem_paper_split_cifar() -> Protocol:
    """Split CIFAR-100 as in the A-GEM paper (ICLR'19; Section 6, Appendix C).

    20 tasks of 5 classes with one head per task (task labels), the reduced ResNet-18
    of the GEM paper, all 2500 training images per task, 65 memory examples per task
    (13 per class), A-GEM sample size 256; selection on tasks 0-2, report on 3-19.
    PROG-NN is left out: this library's progressive networks are MLPs.
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
        "ICLR'19 A-GEM paper: Split CIFAR-100, 20 tasks, one head per task, reduced "
        "ResNet-18, 9 methods (no PROG-NN), 5 seeds",
        base,
        _iclr_methods(CIFAR_LRS, 65, CIFAR_PUBLISHED, pnn=False),
    )


PRESETS = {
    "agem-paper-pmnist": agem_paper_pmnist,
    "agem-paper-pfmnist": agem_paper_pfmnist,
    "agem-paper-split-cifar": agem_paper_split_cifar,
    "tiny-memories-pmnist": tiny_memories_pmnist,
    "tiny-memories-pfmnist": tiny_memories_pfmnist,
}


def get_preset(name: str) -> Protocol:
    """The protocol registered as `name` (SpecError listing the names otherwise)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise SpecError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
