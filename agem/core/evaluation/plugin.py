"""`EvaluationPlugin`: the accuracy matrix, learning curves and training statistics.

What it records (all of it plain data in `results`, the headline numbers in `summary()`):

- The accuracy matrix R: row i is the i-th experience trained (in training order, as
  `train()` was called) and column j the test set of the j-th experience trained,
  matched by `current_experience`; `summary()["experience_ids"]` names them. So a
  stream trained from any starting experience, in any order, gives a square matrix.
  Every `eval()` on test experiences fills the row of the last experience trained (an
  `eval()` during the training of an experience, from a training hook, after at least
  one of its minibatches, fills that experience's row). Test experiences never trained
  are kept in `results["evaluations"]`.
- Where an experience's test set holds fewer classes than the model has outputs (split
  benchmarks evaluated class-incrementally, with one head over all classes), also the
  task-incremental accuracy of the same evaluation, as Mammoth reports it: the prediction
  restricted to that experience's classes (`classes_in_this_experience`), as if the task
  were given at test time. Its matrix and final average are `accuracy_matrix_task_il` and
  `A_T_task_il`; the headline R and A_T stay class-incremental. A multi-head model (task
  labels) is evaluated task-incrementally already, and has no second accuracy.
- b_j, the untrained model's accuracies (for forward transfer): from an `eval()` before
  any training, or measured once by the evaluator itself when it knows the test stream.
- The LCA learning curves: accuracy on the current experience's test set before its
  first minibatch and after each of its first `lca_beta` minibatches.
- Training loss and accuracy per epoch, on the trained experience's own samples (the
  criterion on `mb_output` / `mb_y` as the template computed it: replayed samples and
  penalties are not included), wall time per experience, peak resident memory.

How the test stream is given: `EvaluationPlugin(eval_stream=benchmark.test_stream)`,
passed to a strategy as `evaluator=`. The evaluations the evaluator starts itself get
the keyword arguments given to `train()` (e.g. `num_workers`). With a stream the
evaluator measures b_j before the first experience and records LCA curves; with
`eval_every="experience"` it also evaluates the whole stream after each experience (so
the user need not call `eval`). The strategy's default evaluator has no stream: it
records what the user's `eval` calls measure (b_j from an `eval` before any training),
and it learns the test stream from them: once the user has evaluated experience k's
test set, it records the LCA curve of experience k when k is trained. So evaluating the
test stream before training and after each experience gives every metric.

Cost: counts and losses are accumulated as tensors on the device. The LCA curve of an
experience is read back once, after the experience; training statistics once per epoch;
evaluations once per evaluated experience. Nothing is read back per training iteration.
LCA evaluations use a fixed random subset of at most `lca_test_size` test samples (the
same subset for every run and seed, chosen from the experience index; the default 500
keeps the beta + 1 evaluations per experience a small fraction of training with small
minibatches on a CPU), through the
strategy's own `eval`, which leaves the training state, the model's mode and the
strategy's shuffling generator untouched.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from agem import metrics
from agem.benchmarks.streams import Experience
from agem.core.clock import Clock
from agem.core.evaluation.lca import LCA_ORIGIN, LCAProbe
from agem.core.evaluation.statistics import TrainingStatistics

__all__ = ["EVAL_EVERY", "LCA_ORIGIN", "Evaluated", "EvaluationPlugin", "peak_rss_bytes"]
from agem.core.plugin import Plugin, check_settings
from agem.models.multitask import MultiTaskModule


class Evaluated(Protocol):
    """What the evaluator reads from the strategy (the template, which sits above it)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    clock: Clock
    experience: Experience | None
    mb_output: Tensor | None
    loss: Tensor | None
    mb_loss: Tensor | None

    @property
    def mb_y(self) -> Tensor: ...

    def eval(
        self, experiences: Experience | Sequence[Experience], **kwargs: Any
    ) -> dict[str, Any]: ...


EVAL_EVERY = (None, "experience")


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far, in bytes (None where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak if sys.platform == "darwin" else peak * 1024


def _optional_count(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        raise ValueError(f"{name} must be a {kind} integer or None, got {value!r}")
    return value


def _none_if_nan(v: float) -> float | None:
    return None if v != v else v


class EvaluationPlugin(Plugin):
    """Accuracy matrix, A_T / F_T / BWT / FWT / LCA, learning curves and training statistics.

    Args:
        eval_stream: the test stream (a `Stream` or sequence of test `Experience`s). Needed
            for LCA curves, for measuring b_j automatically and for `eval_every`.
        eval_every: None (the user calls `strategy.eval`) or "experience" (evaluate
            `eval_stream` after each training experience, filling one matrix row each).
        lca_beta: minibatches in the LCA curve (default 10, the A-GEM paper's beta); None turns the
            LCA curves off.
        lca_test_size: at most this many test samples per LCA evaluation (default 500;
            None uses the whole test set). The cap and the sizes used are recorded.
        measure_initial: measure the untrained model on `eval_stream` before the first
            experience (for FWT's b_j), unless an `eval()` before training already did.
    """

    order = 100  # after the methods, so it sees their final state; loggers come later

    def __init__(
        self,
        *,
        eval_stream: Sequence[Experience] | None = None,
        eval_every: str | None = None,
        lca_beta: int | None = 10,
        lca_test_size: int | None = 500,
        measure_initial: bool = True,
    ) -> None:
        if eval_stream is not None:
            if isinstance(eval_stream, Experience) or not isinstance(eval_stream, Sequence):
                raise TypeError(
                    "eval_stream must be a stream (sequence) of test experiences, "
                    f"got {type(eval_stream).__name__}"
                )
            for exp in eval_stream:
                if not isinstance(exp, Experience):
                    raise TypeError(f"eval_stream holds a {type(exp).__name__}, not an Experience")
        if eval_every not in EVAL_EVERY:
            raise ValueError(f"eval_every must be None or 'experience', got {eval_every!r}")
        if eval_every is not None and eval_stream is None:
            raise ValueError("eval_every='experience' needs eval_stream (the test stream)")
        if not isinstance(measure_initial, bool):
            raise TypeError(f"measure_initial must be a bool, got {measure_initial!r}")
        self.eval_stream = eval_stream
        self.eval_every = eval_every
        self.lca_beta = _optional_count("lca_beta", lca_beta, 0)
        self.lca_test_size = _optional_count("lca_test_size", lca_test_size, 1)
        self.measure_initial = measure_initial

        # recorded results (plain data; checkpointed)
        self.matrix: dict[int, dict[int, float]] = {}
        self.matrix_task_il: dict[int, dict[int, float]] = {}
        self.initial_accuracies: dict[int, float] = {}
        self.lca_curves: dict[int, list[float]] = {}
        self.lca_test_sizes: dict[int, int] = {}
        self.training: list[dict[str, Any]] = []  # one record per epoch
        self.experiences: dict[int, dict[str, Any]] = {}  # per trained experience
        self.trained: list[int] = []  # experience id of each matrix row, in training order
        self.evaluations: list[dict[str, Any]] = []  # one record per eval() on test data
        self.eval_seconds = 0.0  # evaluations the evaluator ran itself
        self.peak_rss_bytes: int | None = None
        self.peak_cuda_bytes: int | None = None

        # transient state
        self._last: dict[str, Any] = {}
        self._current: dict[int, tuple[float, float]] = {}
        self._correct: Tensor | None = None
        self._correct_task: Tensor | None = None  # task-incremental count, when it applies
        self._task_mask: Tensor | None = None  # 0 on the experience's classes, -inf elsewhere
        self._loss_sum: Tensor | None = None
        self._count = 0
        self._probing = False
        self._lca = LCAProbe(beta=self.lca_beta, test_size=self.lca_test_size)
        self._statistics = TrainingStatistics()
        self._seen_tests: dict[int, Experience] = {}  # test sets the user evaluated
        self._training_exp: int | None = None
        self._trained_any = False  # a minibatch of the current experience was trained
        self._exp_start = 0.0

    # ---- which matrix row an evaluation fills -------------------------------------
    def _row(self, strategy: Evaluated) -> int:
        """The last experience trained: -1 before any training (b_j)."""
        counter = strategy.clock.train_exp_counter
        inside = self._training_exp == counter and self._trained_any
        return counter if inside else counter - 1

    def _test_experience(self, index: int) -> Experience | None:
        if self.eval_stream is None:
            return self._seen_tests.get(index)
        for exp in self.eval_stream:
            if exp.current_experience == index:
                return exp
        return None

    # ---- training hooks -------------------------------------------------------------
    def before_training(self, strategy: Evaluated, **kwargs: Any) -> None:
        self._training_exp = None
        stream = self.eval_stream
        if not self.measure_initial or stream is None or strategy.clock.train_exp_counter != 0:
            return
        if all(e.current_experience in self.initial_accuracies for e in stream):
            return
        start = time.perf_counter()
        self._eval_untrained(strategy, stream, kwargs)
        self.eval_seconds += time.perf_counter() - start

    def _eval_untrained(
        self, strategy: Evaluated, stream: Sequence[Experience], kwargs: dict[str, Any]
    ) -> None:
        """Evaluate the untrained model on `stream`.

        A multi-task model lacks heads for the tasks not trained yet; the template's `eval`
        grows them (fresh random heads: untrained, as b_j needs). So that measuring b_j
        does not change training, a copy is measured, under a forked RNG, and the
        optimizer groups that eval added for the copy's heads are dropped again.
        """
        model = strategy.model
        if not any(isinstance(m, MultiTaskModule) for m in model.modules()):
            strategy.eval(stream, **kwargs)
            return
        groups = len(strategy.optimizer.param_groups)
        cuda = [strategy.device] if strategy.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            strategy.model = copy.deepcopy(model)
            try:
                strategy.eval(stream, **kwargs)
            finally:
                strategy.model = model
                del strategy.optimizer.param_groups[groups:]

    def exclude_from_timing(self, seconds: float) -> None:
        """Leave `seconds` spent on other work (e.g. other runs' evaluations in a fleet)
        out of the training time of the current experience."""
        self._exp_start += seconds

    def before_training_exp(self, strategy: Evaluated, **kwargs: Any) -> None:
        exp = strategy.experience
        assert exp is not None
        k = exp.current_experience
        self._training_exp = row = strategy.clock.train_exp_counter
        self.trained[row:] = []
        self.trained += [-1] * (row - len(self.trained)) + [k]  # -1: trained before it saw
        self._trained_any = False
        lca = self._lca
        lca.start(lca.capped(k, self._test_experience(k)) if self.lca_beta is not None else None)
        self._exp_start = time.perf_counter()
        if lca.experience is not None:
            self._probe(strategy, kwargs)  # b = 0: before the first minibatch
            lca.left = self.lca_beta or 0

    def _probe(self, strategy: Evaluated, kwargs: dict[str, Any]) -> None:
        """One LCA probe: evaluate the capped test set, keep the count on the device."""
        assert self._lca.experience is not None
        start = time.perf_counter()
        self._probing = True
        try:
            strategy.eval(self._lca.experience, **kwargs)
        finally:
            self._probing = False
        assert self._correct is not None
        self._lca.record(self._correct, self._count, time.perf_counter() - start)

    def before_training_epoch(self, strategy: Evaluated, **kwargs: Any) -> None:
        self._statistics.start_epoch(strategy.device)

    def after_training_iteration(self, strategy: Evaluated, **kwargs: Any) -> None:
        self._trained_any = True
        # the criterion on the experience's own samples: without penalties or replay
        out, loss = strategy.mb_output, strategy.mb_loss
        if out is not None and loss is not None and self._statistics.started:
            self._statistics.add(loss, out, strategy.mb_y)
        if self._lca.left > 0:  # python int: no device work after the first beta iterations
            self._lca.left -= 1
            self._probe(strategy, kwargs)

    def after_training_epoch(self, strategy: Evaluated, **kwargs: Any) -> None:
        epoch = self._statistics.epoch()
        if epoch is None:
            return
        exp = strategy.experience
        assert exp is not None
        loss, accuracy, n = epoch
        self.training.append(
            {
                "experience": exp.current_experience,
                "epoch": strategy.clock.train_exp_epochs,
                "iterations": strategy.clock.train_epoch_iterations,
                "train_iterations": strategy.clock.train_iterations,
                "samples": n,
                "loss": loss,
                "accuracy": accuracy,
            }
        )

    def after_training_exp(self, strategy: Evaluated, **kwargs: Any) -> None:
        exp = strategy.experience
        assert exp is not None
        k = exp.current_experience
        if strategy.device.type == "cuda":
            torch.cuda.synchronize(strategy.device)  # once per experience, for the timing
        seconds = time.perf_counter() - self._exp_start - self._lca.seconds
        curve = self._lca.curve()
        if curve is not None:
            self.lca_curves[k] = curve
            self.lca_test_sizes[k] = self._lca.size
        self.experiences[k] = {
            "experience": k,
            "train_seconds": seconds,
            "lca_seconds": self._lca.seconds,
            "epochs": strategy.clock.train_exp_epochs,
            "iterations": strategy.clock.train_exp_iterations,
        }
        self.peak_rss_bytes = peak_rss_bytes()
        if strategy.device.type == "cuda":
            self.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(strategy.device))
        if self.eval_every == "experience" and self.eval_stream is not None:
            start = time.perf_counter()
            strategy.eval(self.eval_stream, **kwargs)
            self.eval_seconds += time.perf_counter() - start

    def after_training(self, strategy: Evaluated, **kwargs: Any) -> None:
        self._training_exp = None

    # ---- evaluation hooks -----------------------------------------------------------
    def before_eval(self, strategy: Evaluated, **kwargs: Any) -> None:
        if not self._probing:
            self._last = {}
            self._current = {}

    def before_eval_exp(self, strategy: Evaluated, **kwargs: Any) -> None:
        self._correct = torch.zeros((), dtype=torch.long, device=strategy.device)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=strategy.device)
        self._count = 0
        self._correct_task = self._task_mask = None

    def _count_task_il(self, strategy: Evaluated, out: Tensor, y: Tensor) -> None:
        """Count the predictions restricted to the evaluated experience's classes, when
        those are fewer than the model's outputs (no LCA probe: they count A_T only)."""
        exp = strategy.experience
        classes = exp.classes_in_this_experience if exp is not None else ()
        outputs = int(out.shape[-1])
        if self._probing or not classes or len(classes) >= outputs or max(classes) >= outputs:
            return
        if self._task_mask is None or self._task_mask.shape[-1] != outputs:
            mask = torch.full((outputs,), float("-inf"), dtype=out.dtype)
            mask[list(classes)] = 0.0
            self._task_mask = mask.to(out.device)
            self._correct_task = torch.zeros((), dtype=torch.long, device=out.device)
        assert self._correct_task is not None
        self._correct_task += ((out + self._task_mask).argmax(dim=-1) == y).sum()

    def after_eval_iteration(self, strategy: Evaluated, **kwargs: Any) -> None:
        assert self._correct is not None and self._loss_sum is not None
        out, y, loss = strategy.mb_output, strategy.mb_y, strategy.loss
        assert out is not None and loss is not None
        n = int(y.shape[0])
        self._correct += (out.argmax(dim=-1) == y).sum()
        self._count_task_il(strategy, out, y)
        self._loss_sum.add_(loss if loss.dim() == 0 else loss.mean(), alpha=n)
        self._count += n

    def after_eval_exp(self, strategy: Evaluated, **kwargs: Any) -> None:
        if self._probing:
            return  # the LCA count stays on the device until the experience ends
        assert self._correct is not None and self._loss_sum is not None
        exp = strategy.experience
        assert exp is not None
        j = exp.current_experience
        counts = [self._correct.to(torch.float64), self._loss_sum]
        if self._correct_task is not None:
            counts.append(self._correct_task.to(torch.float64))
        correct, loss_sum, *task = torch.stack(counts).tolist()  # one read-back
        n = max(self._count, 1)
        acc, loss = correct / n, loss_sum / n
        self._last[f"accuracy/exp{j}"] = acc
        self._last[f"loss/exp{j}"] = loss
        if exp.origin_stream != "test":
            return
        self._current[j] = (acc, loss)
        if self.eval_stream is None and self._seen_tests.get(j) is not exp:
            self._seen_tests[j] = exp
            self._lca.forget(j)
        row = self._row(strategy)
        if row < 0:
            self.initial_accuracies[j] = acc
        else:
            self.matrix.setdefault(row, {})[j] = acc
            if task:
                self.matrix_task_il.setdefault(row, {})[j] = task[0] / n

    def after_eval(self, strategy: Evaluated, **kwargs: Any) -> None:
        if self._probing:
            return
        accs = [v for k, v in self._last.items() if k.startswith("accuracy/exp")]
        losses = [v for k, v in self._last.items() if k.startswith("loss/exp")]
        if accs:
            self._last["accuracy/stream"] = sum(accs) / len(accs)
            self._last["loss/stream"] = sum(losses) / len(losses)
        if self._current:
            self.evaluations.append(
                {
                    "after_experience": self._row(strategy),
                    "train_iterations": strategy.clock.train_iterations,
                    "accuracy": {str(j): a for j, (a, _) in sorted(self._current.items())},
                    "loss": {str(j): v for j, (_, v) in sorted(self._current.items())},
                }
            )
            self._current = {}

    # ---- results ----------------------------------------------------------------------
    @property
    def probing(self) -> bool:
        """True while an LCA evaluation runs (loggers skip those evaluations)."""
        return self._probing

    def last_metrics(self) -> dict[str, Any]:
        """Metrics of the last `eval()` call: per-experience and mean accuracy and loss."""
        return dict(self._last)

    def matrix_experiences(self) -> list[int]:
        """The experience id of each row (and column) of `accuracy_matrix()`."""
        if not self.matrix:
            return []
        return self.trained[: max(self.matrix) + 1]

    def accuracy_matrix(self) -> list[list[float]]:
        """R as a T x T list, T = the experiences trained so far up to the last evaluated
        row; NaN where not measured. Row i and column j belong to the experiences
        `matrix_experiences()[i]` and `[j]`. Test experiences not trained are in
        `results["evaluations"]`."""
        return self._square(self.matrix)

    def _square(self, matrix: dict[int, dict[int, float]]) -> list[list[float]]:
        ids = self.matrix_experiences()
        return [[matrix.get(i, {}).get(j, float("nan")) for j in ids] for i in range(len(ids))]

    def _task_il(self) -> dict[str, Any]:
        """`A_T_task_il` and `accuracy_matrix_task_il` when the task-incremental accuracy
        was measured (see the module's docstring), else nothing."""
        if not self.matrix_task_il:
            return {}
        R = self._square(self.matrix_task_il)
        last = R[-1] if R else []
        complete = bool(last) and all(v == v for v in last)
        return {
            "A_T_task_il": metrics.average_accuracy(_filled(R)) if complete else None,
            "accuracy_matrix_task_il": [[_none_if_nan(v) for v in row] for row in R],
        }

    def _trained_order(self) -> list[int]:
        """The experiences trained, each once, in the order first trained."""
        return [k for k in dict.fromkeys(self.trained) if k in self.experiences]

    def summary(self) -> dict[str, Any]:
        """A_T, F_T, BWT, FWT, LCA_beta, the accuracy matrix, b_j, LCA curves, time, memory.

        `experience_ids` names the experience of each row and column of the matrix (and
        of `initial_accuracies`); `lca_curves` and `experience_seconds` follow the order
        in which experiences were first trained. A metric whose matrix entries were not
        all measured is None (for example F_T when only the last row was evaluated).
        Missing matrix entries are None.
        """
        ids = self.matrix_experiences()
        R = self.accuracy_matrix()
        T = len(R)
        m = torch.tensor(R, dtype=torch.float64) if R else torch.zeros((0, 0))
        b = [self.initial_accuracies.get(j) for j in ids]
        measured = ~torch.isnan(m)
        last_row = T > 0 and bool(measured[T - 1].all())
        diag = T > 0 and bool(measured.diagonal().all())
        top = T > 0 and bool(measured[: T - 1, : T - 1].all())
        superdiag = T > 0 and all(bool(measured[j - 1, j]) for j in range(1, T))
        out: dict[str, Any] = {
            "A_T": metrics.average_accuracy(_filled(R)) if last_row else None,
            "F_T": metrics.forgetting(_filled(R)) if last_row and top else None,
            "BWT": metrics.backward_transfer(_filled(R)) if last_row and diag else None,
            "FWT": (
                metrics.forward_transfer(_filled(R), [v or 0.0 for v in b])
                if superdiag and all(v is not None for v in b)
                else None
            ),
        }
        beta = self.lca_beta
        trained = self._trained_order()
        lca_key = f"LCA_{beta}" if beta is not None else "LCA"
        curves = [self.lca_curves.get(k) for k in trained]
        have_curves = bool(curves) and all(c is not None for c in curves)
        out[lca_key] = (
            metrics.learning_curve_area(curves, beta) if beta is not None and have_curves else None
        )
        out.update(
            {
                "T": T,
                "experience_ids": ids,
                "accuracy_matrix": [[_none_if_nan(v) for v in row] for row in R],
                "initial_accuracies": b,
                "lca_beta": beta,
                "lca_test_size": self.lca_test_size,
                "lca_test_sizes": [self.lca_test_sizes.get(k) for k in trained],
                "lca_curves": curves,
                "train_seconds": sum(e["train_seconds"] for e in self.experiences.values()),
                "lca_seconds": sum(e["lca_seconds"] for e in self.experiences.values()),
                "eval_seconds": self.eval_seconds,
                "experience_seconds": [self.experiences[k]["train_seconds"] for k in trained],
                "peak_rss_bytes": self.peak_rss_bytes,
                "peak_cuda_bytes": self.peak_cuda_bytes,
            }
        )
        out.update(self._task_il())
        return out

    @property
    def results(self) -> dict[str, Any]:
        """Everything recorded, as plain JSON-serialisable data: `summary()` plus the
        per-epoch training records, the per-experience records and every evaluation."""
        out = self.summary()
        out["experiences"] = [dict(self.experiences[k]) for k in self._trained_order()]
        out["training"] = [dict(r) for r in self.training]
        out["evaluations"] = copy.deepcopy(self.evaluations)
        return out

    def _settings(self) -> dict[str, Any]:
        return {
            "lca_beta": self.lca_beta,
            "lca_test_size": self.lca_test_size,
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse records made with other evaluation settings."""
        check_settings("evaluator", state.get("settings"), self._settings())
        if not isinstance(state.get("matrix"), dict):
            raise ValueError("checkpoint evaluator records are malformed")

    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self._settings(),
            "matrix": {i: dict(r) for i, r in self.matrix.items()},
            "matrix_task_il": {i: dict(r) for i, r in self.matrix_task_il.items()},
            "initial_accuracies": dict(self.initial_accuracies),
            "lca_curves": {k: list(c) for k, c in self.lca_curves.items()},
            "lca_test_sizes": dict(self.lca_test_sizes),
            "training": copy.deepcopy(self.training),
            "experiences": copy.deepcopy(self.experiences),
            "trained": list(self.trained),
            "evaluations": copy.deepcopy(self.evaluations),
            "eval_seconds": self.eval_seconds,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_cuda_bytes": self.peak_cuda_bytes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        self.matrix = {
            int(i): {int(j): float(v) for j, v in r.items()} for i, r in state["matrix"].items()
        }
        self.matrix_task_il = {
            int(i): {int(j): float(v) for j, v in r.items()}
            for i, r in state.get("matrix_task_il", {}).items()
        }
        self.initial_accuracies = {int(j): float(v) for j, v in state["initial_accuracies"].items()}
        self.lca_curves = {
            int(k): [float(v) for v in c] for k, c in state.get("lca_curves", {}).items()
        }
        self.lca_test_sizes = {int(k): int(v) for k, v in state.get("lca_test_sizes", {}).items()}
        self.training = copy.deepcopy(list(state.get("training", [])))
        self.experiences = {
            int(k): dict(v) for k, v in copy.deepcopy(state.get("experiences", {})).items()
        }
        self.trained = [int(k) for k in state.get("trained", sorted(self.experiences))]
        self.evaluations = copy.deepcopy(list(state.get("evaluations", [])))
        self.eval_seconds = float(state.get("eval_seconds", 0.0))
        self.peak_rss_bytes = state.get("peak_rss_bytes")
        self.peak_cuda_bytes = state.get("peak_cuda_bytes")


def _filled(R: list[list[float]]) -> list[list[float]]:
    """R with entries the metric at hand does not read set to 0 (they are NaN)."""
    return [[0.0 if v != v else v for v in row] for row in R]
