"""`RunConfig`: every setting of one `agem run`, validated, as one flat frozen dataclass.

The one place where a run's settings are defined: the command line builds a `RunConfig`
from its flags (one flag per field, `--field-name`), `config.json` serialises it
(`to_dict`, plus an "environment" section), and `--config FILE` / `--resume DIR` read it
back (`from_file`). Every value is checked when a `RunConfig` is made (also through
`dataclasses.replace`), and an error names the option as it is spelled on the command line.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("naive", "agem", "gem", "replay", "ewc", "cumulative", "si", "mas", "rwalk", "pnn")
MODELS = ("mlp", "resnet18")
OPTIMIZERS = ("sgd", "adam", "adamw")
SAMPLINGS = ("uniform", "balanced")
FILLINGS = ("random", "class_balanced", "ring_buffer")
INITS = ("default", "truncated_normal")
EWC_MODES = ("separate", "online", "running")
GEM_SOLVERS = ("auto", "quadprog", "device")  # as agem.plugins.gem.SOLVERS
LOGGERS = ("csv", "tensorboard", "wandb")
DEFAULT_BENCHMARK = "permuted_digits"

MAX_SEED = 2**32 - 1
MAX_EXPERIENCES = 1000  # the evaluation alone is quadratic in the number of experiences
MAX_THREADS = 1024
MAX_LAYER = 2**20
MAX_FLEET = 1024
FLEET_STRATEGIES = ("naive", "agem", "replay")
GRAPH_STRATEGIES = ("naive", "agem")

# fields whose command-line flag is not simply --field-name
_FLAGS = {"download": "--no-download", "checkpoint": "--no-checkpoint"}


def flag(name: str) -> str:
    """The command-line flag of config field `name` (e.g. "mem_size" -> "--mem-size")."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class _Rule:
    """How one field is checked: its kind, bounds and choices; None allowed or not."""

    kind: str  # int, float, str, bool, sizes
    low: float | None = None
    high: float | None = None
    above: bool = False  # the low bound is exclusive
    choices: tuple[str, ...] = ()
    optional: bool = False


_RULES: dict[str, _Rule] = {
    "benchmark": _Rule("str"),  # checked against the registry
    "n_experiences": _Rule("int", 1, MAX_EXPERIENCES, optional=True),
    "train_subset": _Rule("int", 1, optional=True),
    "fresh_subset": _Rule("bool"),
    "experiences": _Rule("range", optional=True),
    "data_dir": _Rule("str", optional=True),
    "download": _Rule("bool"),
    "task_labels": _Rule("bool"),
    "strategy": _Rule("str", choices=STRATEGIES),
    "model": _Rule("str", choices=MODELS),
    "hidden_sizes": _Rule("sizes", 1, MAX_LAYER),
    "init": _Rule("str", choices=INITS),
    "epochs": _Rule("int", 1),
    "lr": _Rule("float", 0, above=True),
    "optimizer": _Rule("str", choices=OPTIMIZERS),
    "momentum": _Rule("float", 0),
    "weight_decay": _Rule("float", 0),
    "batch_size": _Rule("int", 1),
    "eval_batch_size": _Rule("int", 1),
    "seed": _Rule("int", 0, MAX_SEED),
    "device": _Rule("str"),
    "threads": _Rule("int", 1, MAX_THREADS, optional=True),
    "checkpoint": _Rule("bool"),
    "patterns_per_experience": _Rule("int", 1),
    "sample_size": _Rule("int", 1),
    "sampling": _Rule("str", choices=SAMPLINGS),
    "memory_filling": _Rule("str", choices=FILLINGS),
    "memory_strength": _Rule("float", 0),
    "gem_solver": _Rule("str", choices=GEM_SOLVERS),
    "mem_size": _Rule("int", 1),
    "ewc_lambda": _Rule("float", 0),
    "ewc_mode": _Rule("str", choices=EWC_MODES),
    "decay_factor": _Rule("float", 0, 1),
    "si_lambda": _Rule("float", 0),
    "si_xi": _Rule("float", 0, above=True),
    "mas_lambda": _Rule("float", 0),
    "rwalk_lambda": _Rule("float", 0),
    "rwalk_alpha": _Rule("float", 0, 1, above=True),
    "lca_beta": _Rule("int", 0, optional=True),
    "lca_test_size": _Rule("int", 0),
    "log_every": _Rule("int", 1),
    "logger": _Rule("str"),  # comma-separated LOGGERS, checked in RunConfig
    "fleet": _Rule("int", 1, MAX_FLEET),
    "cuda_graph": _Rule("bool"),
}


def _describe(rule: _Rule) -> str:
    kind = {"int": "an integer", "float": "a finite number", "str": "a string"}.get(
        rule.kind,
        {"bool": "a true/false value", "range": "a range START:STOP like 3:20"}.get(
            rule.kind, "a list of sizes"
        ),
    )
    if rule.choices:
        kind = "one of " + ", ".join(rule.choices)
    low, high = (None if v is None else int(v) if v == int(v) else v for v in (rule.low, rule.high))
    if low is not None and high is not None:
        kind += f" in {low}..{high}"
    elif low is not None:
        kind += f" {'>' if rule.above else '>='} {low}"
    return kind + (" (or null)" if rule.optional else "")


def _check(name: str, value: Any) -> Any:
    """`value` checked against field `name`'s rule (ints as floats where floats are due)."""
    rule = _RULES[name]
    bad = ValueError(f"{flag(name)} must be {_describe(rule)}, got {value!r}")
    if value is None:
        if rule.optional:
            return None
        raise bad
    if rule.kind == "bool":
        if not isinstance(value, bool):
            raise bad
        return value
    if rule.kind == "range":
        from agem.benchmarks.ranges import parse_range

        try:
            start, _ = parse_range(value) if isinstance(value, str) else (-1, None)
        except ValueError:
            raise bad from None
        if start < 0:
            raise bad
        return value
    if rule.kind == "str":
        if not isinstance(value, str) or not value:
            raise bad
        if rule.choices and value not in rule.choices:
            raise bad
        return value
    if rule.kind == "sizes":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise bad
        return tuple(_number(bad, rule, v, integer=True) for v in value)
    return _number(bad, rule, value, integer=rule.kind == "int")


def _number(bad: ValueError, rule: _Rule, value: Any, *, integer: bool) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    if integer and not isinstance(value, int):
        raise bad
    if not integer:
        value = float(value)
        if not math.isfinite(value):
            raise bad
    if rule.low is not None and (value <= rule.low if rule.above else value < rule.low):
        raise bad
    if rule.high is not None and value > rule.high:
        raise bad
    return value


def _logger_names(text: str) -> tuple[str, ...]:
    """The logger names of "csv,tensorboard" (spaces allowed), checked, in a fixed order."""
    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"--logger must be a comma-separated list of {', '.join(LOGGERS)} "
            f"without repeats, got {text!r}"
        )
    return tuple(n for n in LOGGERS if n in names)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The settings of one run; defaults are the command line's.

    `n_experiences=None` means the benchmark's default (`resolved()` fills it in),
    `lca_beta=None` turns the LCA curves off, `lca_test_size=0` uses the whole test set,
    `experiences="3:20"` trains and evaluates on that range of the benchmark's experiences
    only (renumbered from 0), `threads=None` applies `agem.runtime.default_threads` (1 for
    small MLPs on the CPU), `checkpoint=False` skips the per-experience checkpoints (the run
    then cannot be resumed), `logger` names the loggers, comma-separated (csv, tensorboard,
    wandb). `fleet=K` trains the seeds seed..seed+K-1 in lockstep, each into its own run
    folder; `cuda_graph=True` captures the training step in a CUDA graph (see
    `agem.cuda_graph` and `agem.fleet`).
    """

    benchmark: str = DEFAULT_BENCHMARK
    n_experiences: int | None = None
    train_subset: int | None = None
    fresh_subset: bool = False
    experiences: str | None = None
    data_dir: str | None = None
    download: bool = True
    task_labels: bool = False
    strategy: str = "agem"
    model: str = "mlp"
    hidden_sizes: tuple[int, ...] = (256, 256)
    init: str = "default"
    epochs: int = 1
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 10
    eval_batch_size: int = 1000
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    checkpoint: bool = True
    patterns_per_experience: int = 250
    sample_size: int = 256
    sampling: str = "uniform"
    memory_filling: str = "random"
    memory_strength: float = 0.5
    gem_solver: str = "auto"
    mem_size: int = 1000
    ewc_lambda: float = 10.0
    ewc_mode: str = "separate"
    decay_factor: float = 1.0
    si_lambda: float = 0.01
    si_xi: float = 1e-3
    mas_lambda: float = 0.1
    rwalk_lambda: float = 1.0
    rwalk_alpha: float = 0.9
    lca_beta: int | None = 10
    lca_test_size: int = 500
    log_every: int = 10
    logger: str = "csv,tensorboard"
    fleet: int = 1
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = _check(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        object.__setattr__(self, "logger", ",".join(_logger_names(self.logger)))
        from agem.benchmarks.registry import BENCHMARKS

        if self.benchmark not in BENCHMARKS:
            known = ", ".join(sorted(BENCHMARKS))
            raise ValueError(f"--benchmark must be one of {known}, got {self.benchmark!r}")
        if self.memory_filling == "ring_buffer" and self.strategy != "agem":
            raise ValueError("--memory-filling ring_buffer applies to --strategy agem")
        if self.memory_filling == "ring_buffer" and self.cuda_graph:
            raise ValueError("--cuda-graph supports --memory-filling random or class_balanced")
        if self.fresh_subset and self.train_subset is None:
            raise ValueError("--fresh-subset draws a --train-subset per experience: give one")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"--momentum applies to --optimizer sgd, not {self.optimizer}")
        self._check_fleet_and_graph()
        if self.init != "default" and (self.model != "mlp" or self.strategy == "pnn"):
            raise ValueError(
                f"--init {self.init} applies to --model mlp (not --strategy pnn, whose "
                "columns are added during training)"
            )
        if self.strategy == "pnn" and (not self.task_labels or self.model != "mlp"):
            raise ValueError(
                "--strategy pnn needs --task-labels and --model mlp "
                "(one column and one head per task)"
            )

    def _check_fleet_and_graph(self) -> None:
        """`fleet` and `cuda_graph` apply to some strategies and models only."""
        if self.cuda_graph:
            if self.strategy not in GRAPH_STRATEGIES:
                raise ValueError(
                    f"--cuda-graph supports --strategy {', '.join(GRAPH_STRATEGIES)}, "
                    f"not {self.strategy}"
                )
            if not self.device.startswith("cuda"):
                raise ValueError(
                    f"--cuda-graph needs a CUDA device (--device cuda), got {self.device!r}"
                )
            if self.strategy == "agem" and self.sampling != "uniform":
                raise ValueError("--cuda-graph supports --sampling uniform")
            if self.task_labels:
                raise ValueError("--cuda-graph supports single-head models (no --task-labels)")
        if self.fleet == 1:
            return
        if self.strategy not in FLEET_STRATEGIES:
            raise ValueError(
                f"--fleet supports --strategy {', '.join(FLEET_STRATEGIES)}, not {self.strategy}"
            )
        if self.model != "mlp" or self.task_labels:
            raise ValueError("--fleet supports --model mlp without --task-labels")
        if self.strategy == "agem" and self.sampling != "uniform":
            raise ValueError("--fleet supports --sampling uniform")
        if self.strategy == "agem" and self.memory_filling != "random":
            raise ValueError("--fleet supports --memory-filling random")
        if self.seed + self.fleet - 1 > MAX_SEED:
            raise ValueError(f"--fleet {self.fleet} from --seed {self.seed} passes {MAX_SEED}")

    # ---- conversions -------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of the settings, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """A config from plain data (e.g. JSON); unknown keys and bad values are errors."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config must be a JSON object, got {type(data).__name__}")
        names = set(cls.field_names())
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown option {flag(str(unknown[0]))} in the run config")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read a `config.json` (its recorded "environment" section is ignored)."""
        from agem.bounded import load_json

        path = Path(path)
        data = load_json(path)  # a regular file of bounded size and nesting
        if isinstance(data, dict):
            data.pop("environment", None)
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready plain data (`from_dict` reads it back)."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    def logger_names(self) -> tuple[str, ...]:
        """The loggers of `logger`, e.g. ("csv", "tensorboard")."""
        return tuple(self.logger.split(","))

    def resolved(self) -> RunConfig:
        """This config with the benchmark's default number of experiences filled in."""
        if self.n_experiences is not None:
            return self
        from agem.benchmarks.registry import get

        return dataclasses.replace(self, n_experiences=get(self.benchmark).default_experiences)

    def same_run(self, other: RunConfig) -> list[str]:
        """The flags of the settings that differ from `other`'s, except those that do not
        change results (threads, checkpoint)."""
        a, b = self.resolved().to_dict(), other.resolved().to_dict()
        return [flag(k) for k in a if k not in ("threads", "checkpoint") and a[k] != b[k]]
