"""A training step captured in a CUDA graph and replayed, and which plugins allow it.

A step of a small network is a few dozen tiny kernels: launched one by one from Python,
the GPU mostly waits for the host. Captured once in a CUDA graph, the whole step (memory
sample, reference gradient, forward, backward, projection, optimizer step) is one launch.

What is captured runs only once on the host: the hooks fired inside the step
(`IN_STEP_HOOKS`) run at capture, and each replay repeats the device work they queued.
So every plugin that overrides one of them must declare `graph_safe = True`; any other
makes `cuda_graph=True` a `ValueError`. Hooks outside the step (`after_training_iteration`,
per-epoch and per-experience hooks, evaluation) run eagerly as usual.

Recipe (PyTorch's "whole network capture"): the first `warmup` steps of each capture run
eagerly on a side stream (they are real training steps, so nothing is trained twice);
then the step is captured over static input buffers and replayed, each minibatch first
copied into those buffers. A different minibatch shape (the last, partial minibatch)
runs eagerly; a new experience or a grown memory captures again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

from agem.core.hooks import TRAIN_HOOKS
from agem.core.plugin import Plugin
from agem.core.template import BaseTemplate
from agem.models.multitask import MultiTaskModule

#: The hooks fired inside one training step, `before_training_iteration` to `after_update`.
IN_STEP_HOOKS: tuple[str, ...] = TRAIN_HOOKS[
    TRAIN_HOOKS.index("before_training_iteration") : TRAIN_HOOKS.index("after_update") + 1
]

WARMUP_STEPS = 3

T = TypeVar("T")


def in_step_hooks(plugin: Any) -> list[str]:
    """The in-step hooks `plugin` overrides (those a captured step would run only once)."""
    return [
        name
        for name in IN_STEP_HOOKS
        if getattr(type(plugin), name, None) is not getattr(Plugin, name) or name in vars(plugin)
    ]


def is_graph_safe(plugin: Any) -> bool:
    """True when `plugin` declares `graph_safe = True` or has no hook inside the step."""
    return bool(getattr(plugin, "graph_safe", False)) or not in_step_hooks(plugin)


def check_graph_safe(plugins: Sequence[Any]) -> None:
    """Raise ValueError naming the first plugin a captured step cannot run."""
    for plugin in plugins:
        if not is_graph_safe(plugin):
            hooks = ", ".join(in_step_hooks(plugin))
            raise ValueError(
                f"cuda_graph=True: plugin {type(plugin).__name__} is not graph-safe (it "
                f"overrides {hooks}, which a captured step runs only once); remove it, "
                f"or declare graph_safe = True if its step work is pure device work"
            )


def check_capturable_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Raise ValueError when `optimizer.step()` cannot be captured (e.g. Adam without
    `capturable=True`, whose step counter lives on the host)."""
    for group in optimizer.param_groups:
        if "capturable" in group and not group["capturable"]:
            raise ValueError(
                f"cuda_graph=True: {type(optimizer).__name__} must be built with "
                f"capturable=True so that its step can be captured in a CUDA graph"
            )


def check_cuda_device(device: torch.device) -> None:
    """Raise ValueError unless `device` is a CUDA device that exists here."""
    if device.type != "cuda":
        raise ValueError(
            f"cuda_graph=True needs a CUDA device, got {str(device)!r} "
            f"(CUDA graphs capture GPU work only; use cuda_graph=False)"
        )
    if not torch.cuda.is_available():
        raise ValueError("cuda_graph=True needs CUDA, which is not available here")


class StepGraph:
    """Warm-up, capture and replay of one step function over static input buffers.

    `run(key, inputs, step)` returns what `step(inputs)` returns: eagerly for the first
    `warmup` calls after the key changes, then from a graph captured over copies of
    `inputs` (the same tensors each replay: read them before the next call).
    """

    def __init__(self, *, warmup: int = WARMUP_STEPS) -> None:
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be an integer >= 1, got {warmup!r}")
        self.warmup = warmup
        self.captures = 0  # how many graphs were captured (for tests and reports)
        self.replays = 0
        self._key: Hashable = None
        self._left = warmup
        self._graph: Any = None
        self._static: list[Tensor] = []
        self._out: Any = None
        self._side: Any = None

    @property
    def captured(self) -> bool:
        """True while a graph is captured for the current key (calls replay it)."""
        return self._graph is not None

    def reset(self) -> None:
        """Drop the captured graph: the next call warms up and captures again."""
        self._key, self._graph, self._static, self._out = None, None, [], None
        self._left = self.warmup

    def run(
        self,
        key: Hashable,
        inputs: Sequence[Tensor],
        step: Callable[[list[Tensor]], T],
        *,
        generators: Sequence[torch.Generator] = (),
    ) -> T:
        """One step on `inputs`: eager warm-up, capture, or replay (see the class)."""
        if key != self._key:
            self.reset()
            self._key = key
        if self._graph is not None:
            for static, x in zip(self._static, inputs, strict=True):
                static.copy_(x, non_blocking=True)
            self._graph.replay()
            self.replays += 1
            return self._out  # type: ignore[no-any-return,unused-ignore]
        if self._left > 0:
            self._left -= 1
            return self._warmup_step(list(inputs), step)
        return self._capture(list(inputs), step, generators)

    def _warmup_step(self, inputs: list[Tensor], step: Callable[[list[Tensor]], T]) -> T:
        if self._side is None:
            self._side = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self._side.wait_stream(current)
        with torch.cuda.stream(self._side):
            out = step(inputs)
        current.wait_stream(self._side)
        return out

    def _capture(
        self,
        inputs: list[Tensor],
        step: Callable[[list[Tensor]], T],
        generators: Sequence[torch.Generator],
    ) -> T:
        static = [x.clone() for x in inputs]
        graph = torch.cuda.CUDAGraph()
        for gen in generators:
            if not hasattr(graph, "register_generator_state"):
                raise RuntimeError(
                    "this PyTorch cannot capture draws from a custom generator in a CUDA "
                    "graph (CUDAGraph.register_generator_state is missing); upgrade PyTorch"
                )
            graph.register_generator_state(gen)
        with torch.cuda.graph(graph):
            out = step(static)
        self._graph, self._static, self._out = graph, static, out
        self.captures += 1
        graph.replay()  # capture queues nothing: run this step's work now
        self.replays += 1
        return out


class CapturableTemplate(BaseTemplate):
    """`BaseTemplate` whose training step can be captured in a CUDA graph.

    Args:
        cuda_graph: capture the training step once per experience (and again when a
            memory grows) and replay it for every full minibatch. Needs a CUDA device,
            graph-safe plugins and a capturable optimizer; anything else is a ValueError
            at construction, never a silent fallback.
        Other arguments as `BaseTemplate`.
    """

    def __init__(self, *args: Any, cuda_graph: bool = False, **kwargs: Any) -> None:
        if not isinstance(cuda_graph, bool):
            raise ValueError(f"cuda_graph must be True or False, got {cuda_graph!r}")
        super().__init__(*args, **kwargs)
        self.cuda_graph = cuda_graph
        self.step_graph: StepGraph | None = None
        if cuda_graph:
            if any(isinstance(m, MultiTaskModule) for m in self.model.modules()):
                raise ValueError(
                    "cuda_graph=True supports single-head models (a multi-head forward "
                    "reads the task labels on the host)"
                )
            check_graph_safe(self.plugins)
            check_capturable_optimizer(self.optimizer)
            check_cuda_device(self.device)
            for plugin in self.plugins:
                if hasattr(plugin, "device_sampling"):
                    plugin.device_sampling = True
            self.step_graph = StepGraph()

    def _graph_key(self, batch: list[Tensor]) -> Hashable:
        """What a captured step depends on: experience, shapes, memories, parameters."""
        return (
            self.clock.train_exp_counter,
            tuple(tuple(v.shape) for v in batch),
            tuple(getattr(p, "memory_size", None) for p in self.plugins),
            tuple(id(p) for p in self.model.parameters()),
        )

    def _graph_generators(self) -> list[torch.Generator]:
        gens: list[torch.Generator] = []
        for plugin in self.plugins:
            get = getattr(plugin, "graph_generators", None)
            if get is not None:
                gens.extend(get())
        return gens

    def training_step(self, **kwargs: Any) -> None:
        graph = self.step_graph
        batch = self.mbatch
        if graph is None or batch is None or batch[1].shape[0] != self.train_mb_size:
            super().training_step(**kwargs)  # no graph, or the last, partial minibatch
            return

        def step(inputs: list[Tensor]) -> tuple[Tensor | None, Tensor | None]:
            self.mbatch = inputs
            BaseTemplate.training_step(self, **kwargs)
            return self.mb_output, self.loss

        out, loss = graph.run(
            self._graph_key(batch), batch, step, generators=self._graph_generators()
        )
        # Hooks after the step see this minibatch and copies of the static outputs, which
        # the next replay overwrites (the evaluator and loggers keep references).
        self.mbatch = batch
        self.mb_output = out.detach().clone() if out is not None else None
        self.loss = self.mb_loss = loss.detach().clone() if loss is not None else None
