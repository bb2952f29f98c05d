"""`BaseTemplate`: the training and evaluation loop, which fires the plugins' hooks.

The loop is small on purpose; every method (A-GEM, replay, EWC, logging, evaluation)
is a plugin. All hooks are fired by `agem.core.hooks.fire`, in the order listed, with what each
hook may read or change, in docs/ARCHITECTURE.md.

State a plugin may read (and, where the hook allows, change):

- `model`, `optimizer`, `criterion`, `device`, `seed`, `generator` (the seeded RNG
  for shuffling), `train_mb_size`, `eval_mb_size`, `train_epochs`, `plugins`.
- `experience`: the experience being trained or evaluated.
- `adapted_dataset`: the dataset actually iterated (after dataset adaptation).
- `dataloader`: the iterable of minibatches of the current epoch / evaluation.
- `mbatch`: the current minibatch `[x, y, task_labels]`, and its parts `mb_x`, `mb_y`,
  `mb_task_id` (assignable in `before_forward`).
- `mb_output`: the model's output on `mb_x`; `loss`: the minibatch loss (a tensor) that
  backward uses; `mb_loss`: the criterion on (`mb_output`, `mb_y`) as the template
  computed it, unchanged by plugins that change `loss` (penalties, replayed samples).
- `is_training`: True inside `train()`, False inside `eval()`.
- `clock`: counters (`agem.core.clock.Clock`).
"""

from __future__ import annotations

import contextlib
import copy
import secrets
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from agem.benchmarks.streams import Experience, as_tensor_dataset
from agem.core.batching import Batch, batches
from agem.core.clock import Clock
from agem.core.evaluation import EvaluationPlugin
from agem.core.hooks import HookTable, build_hook_table, fire
from agem.core.plugin import Plugin, sort_plugins
from agem.models.multitask import MultiTaskModule
from agem.runtime import apply_threads

_HEAD_SEED_OFFSET = 0x4EAD
_SAVED_ON_EVAL = (
    "experience",
    "adapted_dataset",
    "dataloader",
    "mbatch",
    "mb_output",
    "loss",
    "mb_loss",
    "_label_check",
)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _head_seed(seed: int, task: int) -> int:
    """The seed of task `task`'s new head: distinct per (seed, task), fixed across runs."""
    return (seed * 1_000_003 + task * 7_919 + _HEAD_SEED_OFFSET) % 2**63


def experience_list(arg: Any, method: str) -> list[Experience]:
    """`arg` (an experience or a sequence of them) as a list; a TypeError naming `method`."""
    if isinstance(arg, Experience):
        exps = [arg]
    elif isinstance(arg, Iterable) and not isinstance(arg, (Tensor, Dataset, str, bytes)):
        exps = list(arg)
    else:
        raise TypeError(
            f"{method}() takes an Experience or a sequence of Experiences, got {type(arg).__name__}"
        )
    for exp in exps:
        if not isinstance(exp, Experience):
            raise TypeError(f"{method}() got a {type(exp).__name__} where an Experience belongs")
        if not isinstance(exp.dataset, Dataset):
            raise TypeError(
                f"experience {exp.current_experience}: dataset is a "
                f"{type(exp.dataset).__name__}, not a torch Dataset"
            )
        if len(exp.dataset) == 0:  # type: ignore[arg-type]
            raise ValueError(f"experience {exp.current_experience} has no samples")
    return exps


class BaseTemplate:
    """Train and evaluate `model` on experiences, firing each plugin's hooks.

    Args:
        model: the network; a `MultiTaskModule` also receives task labels.
        optimizer: built on `model.parameters()`; new heads are added to it.
        criterion: loss on `(output, labels)`; cross-entropy by default.
        train_mb_size, train_epochs, eval_mb_size: minibatch sizes and epochs.
        device: where the model and minibatches live.
        plugins: plugins to run, sorted by their `order` (stable).
        evaluator: the evaluation plugin (`strategy.evaluator`); None gives the default
            `EvaluationPlugin()`, False disables it.
        seed: seeds the strategy's own randomness: its generator (shuffling), the
            plugins' generators (memories, reservoirs) and new task heads. None draws a
            fresh seed from the OS. The strategy never seeds or draws from torch's
            global RNG, which the model's initial weights and dropout use: call
            `torch.manual_seed` before building the model for a reproducible run.

    Building a strategy sets torch's CPU threads as `agem run` does when `--threads` is
    not given (`agem.runtime.default_threads`): one thread for a model without
    convolutions and with at most 5M parameters on the CPU, several times faster there
    than torch's default; other models and devices keep torch's setting. Call
    `torch.set_num_threads(n)` after building the strategy to choose otherwise.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        criterion: nn.Module | None = None,
        train_mb_size: int = 1,
        train_epochs: int = 1,
        eval_mb_size: int | None = None,
        device: str | torch.device = "cpu",
        plugins: Sequence[Any] | None = None,
        evaluator: Any = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch Optimizer, got {type(optimizer).__name__}")
        self.train_mb_size = _positive_int("train_mb_size", train_mb_size)
        self.train_epochs = _positive_int("train_epochs", train_epochs)
        self.eval_mb_size = _positive_int(
            "eval_mb_size", train_mb_size if eval_mb_size is None else eval_mb_size
        )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            msg = f"device must name a torch device such as 'cpu', got {device!r}"
            raise ValueError(msg) from e
        if plugins is not None and (
            not isinstance(plugins, Iterable) or isinstance(plugins, (str, bytes))
        ):
            raise TypeError(f"plugins must be a list of plugins, got {type(plugins).__name__}")
        self.model = model.to(self.device)
        # as `agem run` does: one CPU thread for a small model on the CPU (several times
        # faster there); torch.set_num_threads(n) after building a strategy overrides it
        apply_threads(None, self.model, self.device)
        self.optimizer = optimizer
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        # seed=None: a fresh seed from the OS, never from (or reseeding) torch's global RNG
        self.seed = seed if seed is not None else secrets.randbits(31)
        self.generator = torch.Generator().manual_seed(self.seed)
        if evaluator is None:
            evaluator = EvaluationPlugin()
        self.evaluator = evaluator if evaluator is not False else None
        extra = [self.evaluator] if self.evaluator is not None else []
        self.plugins: list[Any] = sort_plugins([*(plugins or []), *extra])
        self.clock = Clock()
        self.is_training = False
        self.experience: Experience | None = None
        self.adapted_dataset: Dataset[Any] | None = None
        self.dataloader: Iterable[Batch] | None = None
        self.mbatch: Batch | None = None
        self.mb_output: Tensor | None = None
        self.loss: Tensor | None = None
        self.mb_loss: Tensor | None = None
        self._hooks: HookTable = {}
        self._label_check: int | None = None
        # task labels of non-tensor datasets with mixed task labels, read once per dataset
        self._task_label_cache: weakref.WeakKeyDictionary[Any, list[int]] = (
            weakref.WeakKeyDictionary()
        )

    # ---- minibatch views --------------------------------------------------------
    def _current(self) -> Batch:
        if self.mbatch is None:
            raise RuntimeError("there is no current minibatch outside train()/eval()")
        return self.mbatch

    @property
    def mb_x(self) -> Tensor:
        """Inputs of the current minibatch."""
        return self._current()[0]

    @mb_x.setter
    def mb_x(self, value: Tensor) -> None:
        self._current()[0] = value

    @property
    def mb_y(self) -> Tensor:
        """Labels of the current minibatch."""
        return self._current()[1]

    @mb_y.setter
    def mb_y(self, value: Tensor) -> None:
        self._current()[1] = value

    @property
    def mb_task_id(self) -> Tensor:
        """Task labels of the current minibatch."""
        return self._current()[-1]

    @mb_task_id.setter
    def mb_task_id(self, value: Tensor) -> None:
        self._current()[-1] = value

    # ---- training: the loop and its public phases -------------------------------
    def fire(self, hook: str, **kwargs: Any) -> None:
        """Call `hook` on every plugin that overrides it (the table of the current
        `train()`), with this strategy and `kwargs`."""
        fire(self._hooks, hook, self, kwargs)

    def _fire(self, hook: str, kwargs: dict[str, Any]) -> None:
        fire(self._hooks, hook, self, kwargs)

    def train(self, experiences: Experience | Sequence[Experience], **kwargs: Any) -> None:
        """Train on one experience or on each of a sequence, in order.

        The loop is its public phases, which a caller that drives several strategies in
        lockstep (the fleet) calls in the same order: `start_training`, then per
        experience `start_experience`, per epoch `start_epoch` (its minibatches), per
        minibatch `training_iteration`, `end_epoch`, `end_experience`; `end_training`.
        """
        exps = experience_list(experiences, "train")
        try:
            self.start_training(**kwargs)
            for exp in exps:
                self.start_experience(exp, **kwargs)
                for _ in range(self.train_epochs):
                    for mbatch in self.start_epoch(**kwargs):
                        self.training_iteration(mbatch, **kwargs)
                    self.end_epoch(**kwargs)
                self.end_experience(**kwargs)
            self.end_training(**kwargs)
        finally:
            self.is_training = False

    def start_training(self, **kwargs: Any) -> None:
        """Build the hook table, put the model in training mode, fire `before_training`."""
        self._hooks = build_hook_table(self.plugins, Plugin)
        self.is_training = True
        self.model.train()
        self._fire("before_training", kwargs)

    def end_training(self, **kwargs: Any) -> None:
        """Fire `after_training`; the strategy is no longer training."""
        self._fire("after_training", kwargs)
        self.is_training = False

    def start_experience(self, experience: Experience, **kwargs: Any) -> None:
        """Adapt the dataset and the model to `experience`; fire the hooks up to
        `before_training_exp` (the experience's clock counters are 0)."""
        self.experience = experience
        self._fire("before_train_dataset_adaptation", kwargs)
        self.adapted_dataset = self.train_dataset_adaptation(experience)
        self._fire("after_train_dataset_adaptation", kwargs)
        self.model_adaptation(experience)
        self._label_check = self._max_label()
        self.clock.train_exp_epochs = 0
        self.clock.train_exp_iterations = 0
        self._fire("before_training_exp", kwargs)

    def start_epoch(self, **kwargs: Any) -> Iterable[Batch]:
        """Draw the epoch's minibatches (`dataloader`), fire `before_training_epoch`, and
        return the minibatches to train on (the `dataloader` the hook may have replaced)."""
        if self.adapted_dataset is None:
            raise RuntimeError("start_experience comes before start_epoch")
        self.dataloader = self._batches(
            self.adapted_dataset, self.train_mb_size, shuffle=True, kwargs=kwargs
        )
        self.clock.train_epoch_iterations = 0
        self._fire("before_training_epoch", kwargs)
        return self.dataloader

    def training_iteration(self, mbatch: Batch, **kwargs: Any) -> None:
        """One minibatch: the training step (`training_step`), then `end_iteration`."""
        self.mbatch = mbatch
        self.training_step(**kwargs)
        self.end_iteration(**kwargs)

    def end_iteration(self, **kwargs: Any) -> None:
        """After the step of the current minibatch (`mb_output`, `loss` set): check the
        first output of the experience against its labels, fire
        `after_training_iteration`, advance the clock."""
        self.check_output()
        self._fire("after_training_iteration", kwargs)
        self.clock.train_iterations += 1
        self.clock.train_epoch_iterations += 1
        self.clock.train_exp_iterations += 1

    def end_epoch(self, **kwargs: Any) -> None:
        """Fire `after_training_epoch`; count the epoch."""
        self._fire("after_training_epoch", kwargs)
        self.clock.train_exp_epochs += 1

    def end_experience(self, **kwargs: Any) -> None:
        """Fire `after_training_exp`; count the experience."""
        self._fire("after_training_exp", kwargs)
        self.clock.train_exp_counter += 1

    def train_dataset_adaptation(self, experience: Experience) -> Dataset[Any]:
        """The dataset to train on for `experience` (overridden by e.g. Cumulative)."""
        return experience.dataset

    def model_adaptation(self, experience: Experience) -> None:
        """Grow multi-task modules for the experience's task labels; sync the optimizer.

        Called before training and before evaluating each experience (an unseen task
        gets an untrained head, as needed for the untrained accuracies of forward transfer).
        Each task's new head is initialised from torch's CPU RNG seeded from the
        strategy's seed and the task label, inside `fork_rng`: a head's initial weights
        do not depend on whether an evaluation or training created it, and the global RNG
        is left as it was, so an `eval` call never changes the training trajectory.
        """
        modules = [m for m in self.model.modules() if isinstance(m, MultiTaskModule)]
        if not modules:
            return
        new: list[nn.Parameter] = []
        for task in self._task_labels(experience):
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(_head_seed(self.seed, task))
                for module in modules:
                    new.extend(module.adaptation([task]))
        if new:
            self.model.to(self.device)
            self.optimizer.add_param_group({"params": new})

    def _task_labels(self, experience: Experience) -> list[int]:
        dataset = self.adapted_dataset if self.adapted_dataset is not None else experience.dataset
        data = as_tensor_dataset(dataset)
        if data is not None:
            return [int(t) for t in torch.unique(data.t).tolist()]
        if experience.task_label >= 0:
            return [experience.task_label]
        # mixed task labels in a non-tensor dataset: read them, once per dataset where
        # the dataset can be weakly referenced and hashed
        with contextlib.suppress(KeyError, TypeError):
            return self._task_label_cache[dataset]
        items = (dataset[i] for i in range(len(dataset)))  # type: ignore[arg-type]
        tasks = sorted({int(item[2]) if len(item) > 2 else 0 for item in items})
        with contextlib.suppress(TypeError):
            self._task_label_cache[dataset] = tasks
        return tasks

    def _max_label(self) -> int:
        data = as_tensor_dataset(self.adapted_dataset)  # type: ignore[arg-type]
        if data is not None:
            labels = data.y
            if labels.min() < 0:
                raise ValueError(f"experience {self._exp_index()} has negative labels")
            return int(labels.max())
        classes = self.experience.classes_in_this_experience if self.experience else ()
        return max(classes, default=0)

    def _exp_index(self) -> int:
        return self.experience.current_experience if self.experience is not None else -1

    def _check_output(self, output: Tensor, max_label: int) -> None:
        width = output.shape[-1]
        if max_label >= width:
            raise ValueError(
                f"experience {self._exp_index()} has label {max_label}, but the model "
                f"outputs only {width} classes (labels must be < num_classes)"
            )

    def check_output(self) -> None:
        """On the first minibatch of an experience only: `mb_output` has a class for
        every label of the experience (else a ValueError naming the experience)."""
        if self._label_check is not None and self.mb_output is not None:
            self._check_output(self.mb_output, self._label_check)
            self._label_check = None

    def training_step(self, **kwargs: Any) -> None:
        """Clear grads, forward, loss, backward, step; hooks in between.

        The unit a CUDA graph captures (`agem.core.captured_step`): the hooks fired here are
        the "in-step" hooks, which plugins must declare graph-safe.
        """
        self.optimizer.zero_grad(set_to_none=True)
        self._fire("before_training_iteration", kwargs)
        self._fire("before_forward", kwargs)
        self.mb_output = self.forward()
        self.check_output()
        self._fire("after_forward", kwargs)
        self.loss = self.mb_loss = self.criterion(self.mb_output, self.mb_y)
        self._fire("before_backward", kwargs)
        self.loss.backward()
        self._fire("after_backward", kwargs)
        self._fire("before_update", kwargs)
        self.optimizer.step()
        self._fire("after_update", kwargs)

    def forward(self, x: Tensor | None = None, task_labels: Tensor | None = None) -> Tensor:
        """The model's output on `x` (default `mb_x`), with task labels if it takes them."""
        x = self.mb_x if x is None else x
        if isinstance(self.model, MultiTaskModule):
            return self.model(x, self.mb_task_id if task_labels is None else task_labels)
        return self.model(x)

    def _batches(
        self, dataset: Dataset[Any], batch_size: int, *, shuffle: bool, kwargs: dict[str, Any]
    ) -> Iterable[Batch]:
        default_task = self.experience.task_label if self.experience is not None else 0
        return batches(
            dataset,
            batch_size,
            shuffle=shuffle,
            generator=self.generator,
            device=self.device,
            num_workers=int(kwargs.get("num_workers", 0)),
            default_task=max(default_task, 0),
        )

    # ---- evaluation -------------------------------------------------------------
    def eval(self, experiences: Experience | Sequence[Experience], **kwargs: Any) -> dict[str, Any]:
        """Evaluate on each experience without gradients; return the evaluator's metrics.

        The model's train/eval mode and the training state (experience, minibatch,
        loss) are restored afterwards, so `eval` may be called from a training hook.
        """
        exps = experience_list(experiences, "eval")
        saved = {name: getattr(self, name) for name in _SAVED_ON_EVAL}
        was_training, was_model_training = self.is_training, self.model.training
        modes = [(m, m.training) for m in self.model.modules()]
        outer_hooks = self._hooks
        self._hooks = build_hook_table(self.plugins, Plugin)
        self.is_training = False
        self.model.eval()
        try:
            with torch.no_grad():
                self._fire("before_eval", kwargs)
                for exp in exps:
                    self._eval_exp(exp, kwargs)
                self._fire("after_eval", kwargs)
        finally:
            self.model.train(was_model_training)  # also sets heads created during eval
            for module, mode in modes:  # keeps submodules whose mode differed (frozen BN)
                module.training = mode
            self.is_training = was_training
            self._hooks = outer_hooks
            for name, value in saved.items():
                setattr(self, name, value)
        return self.evaluator.last_metrics() if self.evaluator is not None else {}

    def eval_dataset_adaptation(self, experience: Experience) -> Dataset[Any]:
        """The dataset to evaluate on for `experience`."""
        return experience.dataset

    def _eval_exp(self, experience: Experience, kwargs: dict[str, Any]) -> None:
        self.experience = experience
        self._fire("before_eval_dataset_adaptation", kwargs)
        self.adapted_dataset = self.eval_dataset_adaptation(experience)
        self._fire("after_eval_dataset_adaptation", kwargs)
        self.model_adaptation(experience)
        self.model.eval()  # heads just created start in train mode
        self._label_check = self._max_label()
        self.dataloader = self._batches(
            self.adapted_dataset, self.eval_mb_size, shuffle=False, kwargs=kwargs
        )
        self._fire("before_eval_exp", kwargs)
        for mbatch in self.dataloader:
            self.mbatch = mbatch
            self._fire("before_eval_iteration", kwargs)
            self._fire("before_eval_forward", kwargs)
            self.mb_output = self.forward()
            if self._label_check is not None:  # first minibatch of the experience only
                self._check_output(self.mb_output, self._label_check)
                self._label_check = None
            self._fire("after_eval_forward", kwargs)
            self.loss = self.mb_loss = self.criterion(self.mb_output, self.mb_y)
            self._fire("after_eval_iteration", kwargs)
        self._fire("after_eval_exp", kwargs)

    # ---- checkpoints ------------------------------------------------------------
    def _plugin_keys(self) -> list[str]:
        return [f"{i}:{type(p).__name__}" for i, p in enumerate(self.plugins)]

    def resume_trained(self, experiences: Sequence[Experience]) -> None:
        """After `load_state_dict` when a run resumes: the experiences already trained.

        The default keeps nothing; a strategy whose state is the data itself (which a
        checkpoint does not hold) takes it back here.
        """

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, clock, RNG state and every plugin's state."""
        heads = {
            name: m.task_labels
            for name, m in self.model.named_modules()
            if hasattr(m, "task_labels") and isinstance(m, MultiTaskModule)
        }
        names = {id(p): n for n, p in self.model.named_parameters()}
        groups = [[names.get(id(p), "") for p in g["params"]] for g in self.optimizer.param_groups]
        return {
            "strategy": type(self).__name__,
            "model": self.model.state_dict(),
            "model_task_labels": heads,
            "optimizer_groups": groups,  # to rebuild groups added for new heads
            "optimizer": self.optimizer.state_dict(),
            "clock": self.clock.state_dict(),
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
            "seed": self.seed,
            "plugins": {
                key: p.state_dict()
                for key, p in zip(self._plugin_keys(), self.plugins, strict=True)
                if hasattr(p, "state_dict")
            },
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Raise a ValueError if `state` does not fit this strategy; change nothing.

        Checks the strategy class, the model's parameters and buffers (names, shapes,
        dtypes; task heads the checkpoint grew included), the optimizer's groups, kind and
        per-parameter state, the clock, the RNG states and every plugin's state (a plugin
        with `check_state_dict` checks its own, e.g. A-GEM its memory's settings).
        """
        if not isinstance(state, dict):
            raise ValueError(f"a checkpoint must be a dict, got {type(state).__name__}")
        missing = [
            k for k in ("model", "optimizer", "clock", "rng", "seed", "plugins") if k not in state
        ]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)}")
        kind = state.get("strategy")
        if kind is not None and kind != type(self).__name__:
            raise ValueError(f"checkpoint of a {kind} strategy, not of a {type(self).__name__}")
        model = self._model_as_loaded(state)
        expected = model.state_dict()
        saved = state["model"]
        if set(saved) != set(expected):
            extra, lacking = sorted(set(saved) - set(expected)), sorted(set(expected) - set(saved))
            raise ValueError(
                f"checkpoint model differs: unexpected {extra[:3]}, missing {lacking[:3]}"
            )
        for name, tensor in expected.items():
            other = saved[name]
            if (
                not isinstance(other, Tensor)
                or other.shape != tensor.shape
                or other.dtype != tensor.dtype
            ):
                shape = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
                raise ValueError(
                    f"checkpoint model {name!r} has shape {shape}, this model {tuple(tensor.shape)}"
                )
        self._check_optimizer(state, model)
        clock = state["clock"]
        if not isinstance(clock, dict) or set(clock) != set(self.clock.state_dict()):
            raise ValueError("checkpoint clock differs from this strategy's")
        rng = state["rng"]
        for key, current in (
            ("generator", self.generator.get_state()),
            ("torch", torch.get_rng_state()),
        ):
            value = rng.get(key) if isinstance(rng, dict) else None
            if not isinstance(value, Tensor) or value.shape != current.shape:
                raise ValueError(f"checkpoint RNG state {key!r} is missing or malformed")
        plugins = state["plugins"]
        keys = [
            k
            for k, p in zip(self._plugin_keys(), self.plugins, strict=True)
            if hasattr(p, "state_dict")
        ]
        if not isinstance(plugins, dict) or sorted(plugins) != sorted(keys):
            raise ValueError(f"checkpoint plugins {sorted(plugins)} differ from {sorted(keys)}")
        for key, p in zip(self._plugin_keys(), self.plugins, strict=True):
            if key in plugins and hasattr(p, "check_state_dict"):
                p.check_state_dict(plugins[key])

    def _model_as_loaded(self, state: dict[str, Any]) -> nn.Module:
        """The model with the task heads `state` grew: a copy if any must be grown."""
        heads = state.get("model_task_labels", {})
        modules = dict(self.model.named_modules())
        grow = False
        for name, tasks in heads.items():
            module = modules.get(name)
            if not isinstance(module, MultiTaskModule):
                raise ValueError(f"checkpoint has task heads for {name!r}, which this model lacks")
            grow = grow or set(tasks) - set(getattr(module, "task_labels", tasks)) != set()
        if not grow:
            return self.model
        with torch.random.fork_rng(devices=[]):  # new heads draw weights: keep the RNG as is
            model = copy.deepcopy(self.model)
            copies = dict(model.named_modules())
            for name, tasks in heads.items():
                module = copies[name]
                assert isinstance(module, MultiTaskModule)
                module.adaptation(tasks)
        return model

    def _check_optimizer(self, state: dict[str, Any], model: nn.Module) -> None:
        saved = state["optimizer"]
        groups = state.get("optimizer_groups", [])
        if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list):
            raise ValueError("checkpoint optimizer state is malformed")
        current = self.optimizer.param_groups
        if len(groups) != len(saved["param_groups"]) or len(groups) < len(current):
            raise ValueError(
                f"checkpoint optimizer has {len(saved['param_groups'])} parameter groups, "
                f"this one {len(current)}"
            )
        params = dict(model.named_parameters())
        shapes: list[torch.Size] = []
        for i, group in enumerate(saved["param_groups"]):
            names = groups[i]
            if i < len(current):
                if len(group.get("params", [])) != len(current[i]["params"]):
                    raise ValueError(f"checkpoint optimizer group {i} has another size")
                settings = set(current[i]) - {"params"}
                if set(group) - {"params"} != settings:
                    raise ValueError(
                        "checkpoint optimizer is of another kind "
                        f"(settings {sorted(set(group) - {'params'})}, here {sorted(settings)})"
                    )
                shapes.extend(p.shape for p in current[i]["params"])
            else:
                lacking = [n for n in names if n not in params]
                if lacking:
                    raise ValueError(
                        f"checkpoint optimizer has parameters {lacking} this model lacks"
                    )
                shapes.extend(params[n].shape for n in names)
        for index, per_param in saved.get("state", {}).items():
            if not isinstance(index, int) or not 0 <= index < len(shapes):
                raise ValueError(f"checkpoint optimizer state for unknown parameter {index!r}")
            for key, value in per_param.items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape != shapes[index]:
                    raise ValueError(
                        f"checkpoint optimizer {key!r} of parameter {index} has shape "
                        f"{tuple(value.shape)}, expected {tuple(shapes[index])}"
                    )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (same model, optimizer and plugins).

        Everything is checked first (`check_state_dict`): a checkpoint that does not fit
        is refused before the model, optimizer, plugins or RNG change.
        """
        self.check_state_dict(state)
        modules = dict(self.model.named_modules())
        new: list[nn.Parameter] = []
        for name, tasks in state.get("model_task_labels", {}).items():
            module = modules[name]
            assert isinstance(module, MultiTaskModule)
            new.extend(module.adaptation(tasks))
        if new:
            self.model.to(self.device)
        params = dict(self.model.named_parameters())
        for names in state.get("optimizer_groups", [])[len(self.optimizer.param_groups) :]:
            self.optimizer.add_param_group({"params": [params[n] for n in names]})
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.clock.load_state_dict(state["clock"])
        self.generator.set_state(state["rng"]["generator"])
        torch.set_rng_state(state["rng"]["torch"])
        self.seed = state["seed"]
        plugins = state["plugins"]
        for key, p in zip(self._plugin_keys(), self.plugins, strict=True):
            if key in plugins:
                p.load_state_dict(plugins[key])
