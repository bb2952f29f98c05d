"""`RunConfig`: every setting of one `agem run`, validated, as one flat frozen dataclass.

The one place where a run's settings are defined: the command line builds a `RunConfig`
from its flags (one flag per field, `--field-name`), `config.json` serialises it
(`to_dict`, plus an "environment" section), and `--config FILE` / `--resume DIR` read it
back (`from_file`). Every value is checked when a `RunConfig` is made (also through
`dataclasses.replace`), and an error names the option as it is spelled on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agem.benchmarks.ranges import parse_range
from agem.benchmarks.registry import BENCHMARKS, check_benchmark_arguments, get
from agem.importpath import OwnCodeError, check_arguments, load, plugin_text, split_plugin
from agem.models.registry import MODEL_KEYWORDS, MODELS, get_model, is_builtin
from agem.reporting.plots import DEFAULT_PLOT_FORMAT, PLOT_FORMATS, plot_formats
from agem.strategies.registry import get_strategy, is_registered, strategy_names, strategy_specs

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
MAX_TAG = 64  # W&B's limit on a tag's length

# fields whose command-line flag is not simply --field-name
_FLAGS = {"download": "--no-download", "checkpoint": "--no-checkpoint", "plots": "--no-plots"}
#: settings that change what a run writes or how fast, never its results
_NOT_RESULTS = ("threads", "checkpoint", "plots", "plot_format")
#: what a setting of kind "object" (JSON object) says when it is wrong
_OBJECT = "a JSON object like '{\"hidden\": 512}'"


def flag(name: str) -> str:
    """The command-line flag of config field `name` (e.g. "mem_size" -> "--mem-size")."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


GROUPS = ("run", "evaluation and logging", "agem / gem", "replay", "ewc", "si / mas / rwalk")


@dataclass(frozen=True)
class Setting:
    """One setting of a run, described once: how it is checked (kind, bounds, choices,
    None allowed), its command-line help and group, and, for a switch, the value its
    flag sets. The command line and sweeps are generated from these."""

    kind: str  # int, float, str, bool, sizes, range, object (a JSON object), plugins
    help: str
    group: str = "run"
    low: float | None = None
    high: float | None = None
    above: bool = False  # the low bound is exclusive
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    optional: bool = False
    switch: bool | None = None  # a flag without a value that sets this value
    own: bool = False  # beside the choices: a registered name or an import path (your own)

    def allowed(self) -> tuple[str, ...]:
        """The choices, read now (a registry may have grown)."""
        return self.choices() if callable(self.choices) else self.choices


def setting(default: Any, kind: str, help: str, **rule: Any) -> Any:
    """A `RunConfig` field with its `Setting` (see there) as metadata."""
    return field(default=default, metadata={"setting": Setting(kind, help, **rule)})


def _arguments(option: str, *, example: str = "") -> Any:
    """The setting of the keyword arguments of `option`'s code of your own (a JSON object)."""
    shown = f", e.g. '{example}'" if example else ""
    text = f"keyword arguments of a {option} of your own, as a JSON object{shown} (default: none)"
    return setting(None, "object", text, optional=True)


def settings() -> dict[str, Setting]:
    """Every field of `RunConfig` and its `Setting`, in field order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(RunConfig)}


def _describe(rule: Setting) -> str:
    kind = {"int": "an integer", "float": "a finite number", "str": "a string"}.get(
        rule.kind,
        {
            "bool": "a true/false value",
            "range": "a range START:STOP like 3:20",
            "object": _OBJECT,
            "plugins": "a list of plugins package.module:Class (each maybe :JSON)",
        }.get(rule.kind, "a list of sizes"),
    )
    if rule.allowed():
        kind = "one of " + ", ".join(rule.allowed())
        if rule.own:
            kind += ", a registered name or an import path package.module:Attribute"
    low, high = (None if v is None else int(v) if v == int(v) else v for v in (rule.low, rule.high))
    if low is not None and high is not None:
        kind += f" in {low}..{high}"
    elif low is not None:
        kind += f" {'>' if rule.above else '>='} {low}"
    return kind + (" (or null)" if rule.optional else "")


def _check(name: str, value: Any) -> Any:
    """`value` checked against field `name`'s rule (ints as floats where floats are due)."""
    rule = settings()[name]
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
        if rule.allowed() and value not in rule.allowed() and not rule.own:
            raise bad
        return value  # a name of your own is found (or refused) by __post_init__
    if rule.kind == "object":
        return _object(bad, value)
    if rule.kind == "plugins":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise bad
        if not all(isinstance(v, str) for v in value):
            raise bad
        return tuple(plugin_text(*split_plugin(v)) for v in value)
    if rule.kind == "sizes":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise bad
        return tuple(_number(bad, rule, v, integer=True) for v in value)
    return _number(bad, rule, value, integer=rule.kind == "int")


def _object(bad: ValueError, value: Any) -> dict[str, Any] | None:
    """A JSON object as plain data (a copy; None when empty)."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise bad
    try:
        copy = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise bad from None
    return copy or None


def _number(bad: ValueError, rule: Setting, value: Any, *, integer: bool) -> Any:
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


#: the loggers of a run when `--logger` is not given (metrics.csv is always written)
DEFAULT_LOGGERS = ("csv", "tensorboard")


def _logger_names(text: str) -> tuple[str, ...]:
    """The logger names of "csv,tensorboard" (spaces allowed), checked, in a fixed order.

    csv is always among them: the run folder's metrics.csv is its own record (checkpoints
    carry it). A list that starts with "+" adds to the defaults: "+wandb" is
    csv,tensorboard,wandb, while "wandb" is csv,wandb.
    """
    extra = text.strip().startswith("+")
    names = [n.strip() for n in text.strip().removeprefix("+").split(",")]
    unknown = [n for n in names if n not in LOGGERS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"--logger must be a comma-separated list of {', '.join(LOGGERS)} "
            f"without repeats (+ first to add to {','.join(DEFAULT_LOGGERS)}), got {text!r}"
        )
    chosen = {"csv", *names, *(DEFAULT_LOGGERS if extra else ())}
    return tuple(n for n in LOGGERS if n in chosen)


def _tags(text: str) -> tuple[str, ...]:
    """The W&B tags of "a,b" (spaces around them dropped), each 1 to 64 characters."""
    tags = tuple(t.strip() for t in text.split(",") if t.strip())
    if not tags or any(len(t) > MAX_TAG for t in tags):
        raise ValueError(
            f"--wandb-tags must be comma-separated tags of 1 to {MAX_TAG} characters, got {text!r}"
        )
    return tags


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The settings of one run; defaults are the command line's.

    `n_experiences=None` means the benchmark's default (`resolved()` fills it in),
    `lca_beta=None` turns the LCA curves off, `lca_test_size=0` uses the whole test set,
    `experiences="3:20"` trains and evaluates on that range of the benchmark's experiences
    only (renumbered from 0), `threads=None` applies `agem.runtime.default_threads` (1 for
    small MLPs on the CPU), `checkpoint=False` skips the per-experience checkpoints (the run
    then cannot be resumed), `plots=False` skips the PNG plots, `logger` names the loggers,
    comma-separated (csv, tensorboard, wandb). `fleet=K` trains the seeds seed..seed+K-1
    in lockstep, each into its own run folder; `cuda_graph=True` captures the training
    step in a CUDA graph (see `agem.core.captured_step` and `agem.fleet`). `model`,
    `benchmark` and `strategy` may name code of your own (an entry point's name or an
    import path; `agem.importpath`), with its keyword arguments in `model_args` /
    `benchmark_args` / `strategy_args` (JSON objects; None: none); `plugin` lists plugins
    of your own. For a benchmark of your own without a default number of experiences,
    `n_experiences=None` stays None until the run has built it.
    """

    benchmark: str = setting(
        DEFAULT_BENCHMARK,
        "str",
        "benchmark to run: a built-in name, a name an installed package registers, or "
        "package.module:function returning an agem Benchmark (docs/PLUGGING.md)",
        choices=lambda: tuple(sorted(BENCHMARKS)),
        own=True,
    )
    benchmark_args: Mapping[str, Any] | None = _arguments("--benchmark")
    n_experiences: int | None = setting(
        None,
        "int",
        "number of experiences (default: the benchmark's)",
        low=1,
        high=MAX_EXPERIENCES,
        optional=True,
    )
    train_subset: int | None = setting(
        None,
        "int",
        "permuted/rotated benchmarks: training samples kept per experience (the A-GEM "
        "paper, ICLR'19, trains on all of them; its authors' later tiny-memories paper "
        "keeps 1000; default: all of them)",
        low=1,
        optional=True,
    )
    fresh_subset: bool = setting(
        False,
        "bool",
        "permuted benchmarks: draw another --train-subset for each experience, as the A-GEM "
        "authors' 1000-example code did (default: the same samples in every experience)",
        switch=True,
    )
    experiences: str | None = setting(
        None,
        "range",
        "train and evaluate on this range START:STOP of the benchmark's experiences only,"
        " renumbered from 0: 0:3 to choose hyperparameters, 3:20 to report (default: all)",
        optional=True,
    )
    data_dir: str | None = setting(
        None,
        "str",
        "folder holding the dataset files; only this folder is searched (default: "
        "$AGEM_DATA, else ~/.cache/agem, then system folders)",
        optional=True,
    )
    download: bool = setting(
        True,
        "bool",
        "never download datasets (default: download when missing)",
        switch=False,
    )
    task_labels: bool = setting(
        False,
        "bool",
        "split benchmarks: one task label and head per experience (default: one head)",
        switch=True,
    )
    strategy: str = setting(
        "agem",
        "str",
        "continual-learning method (pnn: progressive networks, needs --task-labels); or a "
        "name an installed package registers, or package.module:Class (docs/PLUGGING.md)",
        choices=strategy_names,
        own=True,
    )
    strategy_args: Mapping[str, Any] | None = _arguments("--strategy")
    model: str = setting(
        "mlp",
        "str",
        "network: mlp, resnet18, a name an installed package registers, or "
        "package.module:Class (docs/PLUGGING.md)",
        choices=MODELS,
        own=True,
    )
    model_args: Mapping[str, Any] | None = _arguments("--model", example='{"hidden": 512}')
    plugin: tuple[str, ...] = setting(
        (),
        "plugins",
        "a plugin of your own: package.module:Class, or package.module:Class:JSON with its "
        "keyword arguments as a JSON object; repeat the flag for more (default: none)",
    )
    hidden_sizes: tuple[int, ...] = setting(
        (256, 256),
        "sizes",
        "MLP hidden layer sizes, comma-separated",
        low=1,
        high=MAX_LAYER,
    )
    init: str = setting(
        "default",
        "str",
        "MLP initial weights: default (PyTorch's) or truncated_normal (the A-GEM authors' "
        "code: weights from a normal of std 0.1 cut at 2 std, biases 0.1)",
        choices=INITS,
    )
    epochs: int = setting(1, "int", "epochs per experience", low=1)
    lr: float = setting(0.1, "float", "learning rate", low=0, above=True)
    optimizer: str = setting("sgd", "str", "optimizer", choices=OPTIMIZERS)
    momentum: float = setting(0.0, "float", "SGD momentum", low=0)
    weight_decay: float = setting(0.0, "float", "L2 weight decay (AdamW: decoupled)", low=0)
    batch_size: int = setting(10, "int", "training minibatch size", low=1)
    eval_batch_size: int = setting(1000, "int", "evaluation minibatch size", low=1)
    seed: int = setting(0, "int", "random seed (0 to 2**32-1)", low=0, high=MAX_SEED)
    device: str = setting("cpu", "str", "torch device, e.g. cpu, cuda, cuda:1")
    threads: int | None = setting(
        None,
        "int",
        "torch CPU threads (default: 1 for a model without convolutions and with at most "
        "5M parameters on the CPU, else torch's choice)",
        low=1,
        high=MAX_THREADS,
        optional=True,
    )
    checkpoint: bool = setting(
        True,
        "bool",
        "do not write a checkpoint after each experience, so the run cannot be resumed "
        "(default: a checkpoint after each experience)",
        switch=False,
    )
    patterns_per_experience: int = setting(
        250,
        "int",
        "episodic memory patterns stored per experience",
        low=1,
        group="agem / gem",
    )
    sample_size: int = setting(
        256,
        "int",
        "A-GEM: memory patterns per reference gradient",
        low=1,
        group="agem / gem",
    )
    sampling: str = setting(
        "uniform",
        "str",
        "A-GEM: memory sampling (uniform is the paper's)",
        choices=SAMPLINGS,
        group="agem / gem",
    )
    memory_filling: str = setting(
        "random",
        "str",
        "which patterns of an experience are stored: random (uniform), class_balanced "
        "(an equal number per class, as the A-GEM authors' code stores 25 per class) or, "
        "A-GEM only, ring_buffer (each class's last examples seen while training, as their "
        "later code does)",
        choices=FILLINGS,
        group="agem / gem",
    )
    memory_strength: float = setting(
        0.5,
        "float",
        "GEM: margin added to the projection",
        low=0,
        group="agem / gem",
    )
    gem_solver: str = setting(
        "auto",
        "str",
        "GEM: quadratic-program solver: quadprog (host, exact), device (no host "
        "synchronisation), auto (quadprog on the CPU with under 5 past experiences, "
        "else device)",
        choices=GEM_SOLVERS,
        group="agem / gem",
    )
    mem_size: int = setting(1000, "int", "replay buffer size", low=1, group="replay")
    ewc_lambda: float = setting(
        10.0,
        "float",
        "EWC penalty weight (with SGD lr 0.1, 100 diverges)",
        low=0,
        group="ewc",
    )
    ewc_mode: str = setting(
        "separate",
        "str",
        "EWC mode: separate (one Fisher per experience), online (one decayed Fisher), "
        "running (the A-GEM paper's: one running Fisher, normalised, anchored at the last "
        "experience's weights)",
        choices=EWC_MODES,
        group="ewc",
    )
    decay_factor: float = setting(
        1.0,
        "float",
        "EWC online mode: Fisher decay",
        low=0,
        high=1,
        group="ewc",
    )
    si_lambda: float = setting(
        0.01,
        "float",
        "SI (path integral) penalty weight (its importance grows with every experience: "
        "with plain SGD, lr * lambda too large diverges; see docs/METHODS.md)",
        low=0,
        group="si / mas / rwalk",
    )
    si_xi: float = setting(
        1e-3,
        "float",
        "SI damping xi of the importance's denominator",
        low=0,
        above=True,
        group="si / mas / rwalk",
    )
    mas_lambda: float = setting(0.1, "float", "MAS penalty weight", low=0, group="si / mas / rwalk")
    rwalk_lambda: float = setting(
        1.0, "float", "RWalk penalty weight", low=0, group="si / mas / rwalk"
    )
    rwalk_alpha: float = setting(
        0.9,
        "float",
        "RWalk: weight of the newest Fisher in its moving average",
        low=0,
        high=1,
        above=True,
        group="si / mas / rwalk",
    )
    lca_beta: int | None = setting(
        10,
        "int",
        "minibatches in the LCA learning curve",
        low=0,
        optional=True,
        group="evaluation and logging",
    )
    lca_test_size: int = setting(
        500,
        "int",
        "test samples per LCA evaluation (0: the whole test set)",
        low=0,
        group="evaluation and logging",
    )
    log_every: int = setting(
        10,
        "int",
        "training-loss points in metrics.csv / TensorBoard every N iterations",
        low=1,
        group="evaluation and logging",
    )
    logger: str = setting(
        ",".join(DEFAULT_LOGGERS),
        "str",
        "loggers, comma-separated: csv (metrics.csv, always written), tensorboard (events "
        "and hyperparameters), wandb (Weights & Biases; needs agem[wandb], WANDB_MODE=offline"
        " writes locally). A list replaces the defaults (wandb alone: csv and W&B, no "
        "TensorBoard); start it with + to add to them (+wandb: csv, tensorboard and W&B)",
        group="evaluation and logging",
    )
    wandb_project: str | None = setting(
        None,
        "str",
        "W&B project (default: $WANDB_PROJECT, else agem)",
        optional=True,
        group="evaluation and logging",
    )
    wandb_entity: str | None = setting(
        None,
        "str",
        "W&B entity: the team or user that owns the project (default: $WANDB_ENTITY, else "
        "your default entity)",
        optional=True,
        group="evaluation and logging",
    )
    wandb_group: str | None = setting(
        None,
        "str",
        "W&B run group (default: $WANDB_RUN_GROUP; in a sweep: the sweep folder's name)",
        optional=True,
        group="evaluation and logging",
    )
    wandb_tags: str | None = setting(
        None,
        "str",
        "W&B tags, comma-separated (default: $WANDB_TAGS)",
        optional=True,
        group="evaluation and logging",
    )
    plots: bool = setting(
        True,
        "bool",
        "do not draw the run's figures (and do not import matplotlib; "
        "default: draw them when the run completes)",
        switch=False,
        group="evaluation and logging",
    )
    plot_format: str = setting(
        DEFAULT_PLOT_FORMAT,
        "str",
        f"figure formats, comma-separated: {', '.join(PLOT_FORMATS)} (PDF and SVG for "
        "papers and slides; a sweep's summary figure and `agem compare` take the same "
        f"list; default {DEFAULT_PLOT_FORMAT})",
        group="evaluation and logging",
    )
    fleet: int = setting(
        1,
        "int",
        "train K runs (seeds seed..seed+K-1) in lockstep in one process, into OUT/seed<s>"
        " (naive, agem, replay with the mlp)",
        low=1,
        high=MAX_FLEET,
    )
    cuda_graph: bool = setting(
        False,
        "bool",
        "capture the training step in a CUDA graph (naive, agem; CUDA devices only; "
        "default: eager steps)",
        switch=True,
    )

    def __post_init__(self) -> None:
        for name in self.field_names():
            object.__setattr__(self, name, _check(name, getattr(self, name)))
        object.__setattr__(self, "logger", ",".join(_logger_names(self.logger)))
        try:
            object.__setattr__(self, "plot_format", ",".join(plot_formats(self.plot_format)))
        except ValueError:
            raise ValueError(
                f"--plot-format must be a comma-separated list of {', '.join(PLOT_FORMATS)} "
                f"without repeats, got {self.plot_format!r}"
            ) from None
        if self.wandb_tags is not None:
            object.__setattr__(self, "wandb_tags", ",".join(_tags(self.wandb_tags)))
        if self.memory_filling == "ring_buffer" and self.strategy != "agem":
            raise ValueError("--memory-filling ring_buffer applies to --strategy agem")
        if self.memory_filling == "ring_buffer" and self.cuda_graph:
            raise ValueError("--cuda-graph supports --memory-filling random or class_balanced")
        if self.fresh_subset and self.train_subset is None:
            raise ValueError("--fresh-subset draws a --train-subset per experience: give one")
        if self.momentum and self.optimizer != "sgd":
            raise ValueError(f"--momentum applies to --optimizer sgd, not {self.optimizer}")
        self._check_own_code()
        self._check_fleet_and_graph()
        spec = get_strategy(self.strategy)
        if self.init != "default" and (self.model != "mlp" or spec.progressive):
            raise ValueError(
                f"--init {self.init} applies to --model mlp (not --strategy {self.strategy}, "
                "whose columns are added during training)"
            )
        if spec.needs_task_labels and (not self.task_labels or self.model != "mlp"):
            raise ValueError(
                f"--strategy {self.strategy} needs --task-labels and --model mlp "
                "(one column and one head per task)"
            )

    def _check_own_code(self) -> None:
        """Code of your own that the run names is found and takes the arguments given
        (imported now, so that a sweep refuses it before any run starts)."""
        check_benchmark_arguments(self.benchmark, self.benchmark_args)
        if is_builtin(self.model):
            if self.model_args:
                raise OwnCodeError(
                    f"--model-args applies to a model of your own, not --model {self.model}"
                )
        else:
            check_arguments(
                get_model(self.model),
                self.model_args or {},
                MODEL_KEYWORDS,
                what=f"--model {self.model}",
            )
        get_strategy(self.strategy)
        if self.strategy_args and is_registered(self.strategy):
            raise OwnCodeError(
                f"--strategy-args applies to a strategy of your own, not --strategy {self.strategy}"
            )
        for text in self.plugin:
            path, arguments = split_plugin(text)
            check_arguments(load(path, option="--plugin"), arguments, (), what=f"--plugin {path}")
        if self.plugin and self.fleet > 1:
            raise ValueError("--fleet does not support --plugin")

    def _check_fleet_and_graph(self) -> None:
        """`fleet` and `cuda_graph` apply to some strategies (the registry says which, and
        with which option values) and models only."""
        spec = get_strategy(self.strategy)
        if self.cuda_graph:
            if not spec.graph:
                capable = [s.name for s in strategy_specs() if s.graph]
                raise ValueError(
                    f"--cuda-graph supports --strategy {', '.join(capable)}, not {self.strategy}"
                )
            if not self.device.startswith("cuda"):
                raise ValueError(
                    f"--cuda-graph needs a CUDA device (--device cuda), got {self.device!r}"
                )
            self._check_requires("--cuda-graph", spec.graph_requires)
            if self.task_labels:
                raise ValueError("--cuda-graph supports single-head models (no --task-labels)")
        if self.fleet == 1:
            return
        if not spec.fleet:
            capable = [s.name for s in strategy_specs() if s.fleet]
            raise ValueError(
                f"--fleet supports --strategy {', '.join(capable)}, not {self.strategy}"
            )
        if self.model != "mlp" or self.task_labels:
            raise ValueError("--fleet supports --model mlp without --task-labels")
        self._check_requires("--fleet", spec.fleet_requires)
        if self.seed + self.fleet - 1 > MAX_SEED:
            raise ValueError(f"--fleet {self.fleet} from --seed {self.seed} passes {MAX_SEED}")

    def _check_requires(self, what: str, requires: Mapping[str, Any]) -> None:
        for name, value in requires.items():
            if getattr(self, name) != value:
                raise ValueError(f"{what} supports {flag(name)} {value}")

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
        out["plugin"] = list(self.plugin)
        return out

    def own_code(self) -> list[str]:
        """The options that name code of your own, e.g. ["--model pkg.mod:Net"]."""
        named = [
            ("--benchmark", self.benchmark, self.benchmark not in BENCHMARKS),
            ("--strategy", self.strategy, not is_registered(self.strategy)),
            ("--model", self.model, not is_builtin(self.model)),
        ]
        own = [f"{option} {value}" for option, value, mine in named if mine]
        return own + [f"--plugin {split_plugin(text)[0]}" for text in self.plugin]

    def logger_names(self) -> tuple[str, ...]:
        """The loggers of `logger`, e.g. ("csv", "tensorboard")."""
        return tuple(self.logger.split(","))

    def plot_formats(self) -> tuple[str, ...]:
        """The figure formats of `plot_format`, e.g. ("png", "pdf")."""
        return tuple(self.plot_format.split(","))

    def resolved(self) -> RunConfig:
        """This config with the benchmark's default number of experiences filled in."""
        if self.n_experiences is not None:
            return self
        return dataclasses.replace(self, n_experiences=get(self.benchmark).default_experiences)

    def same_run(self, other: RunConfig) -> list[str]:
        """The flags of the settings that differ from `other`'s, except those that do not
        change results (threads, checkpoint, figures)."""
        a, b = self.resolved().to_dict(), other.resolved().to_dict()
        return [flag(k) for k in a if k not in _NOT_RESULTS and a[k] != b[k]]
