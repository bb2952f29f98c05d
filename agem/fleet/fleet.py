"""`Fleet`: K runs that differ only in their seed, trained in lockstep in one process.

Each run is a real strategy (any the strategy registry marks `fleet`: naive, agem,
replay, gem, ewc in every mode, si, mas, rwalk, cumulative; on an MLP), built exactly as
it would be alone: its own seed, shuffling generator, plugins, memory, evaluator and
loggers. The fleet replaces only the tensor work of the training step: the K parameter
sets live in one [K, P] leaf tensor, each member's parameters being views of its row (so
the member's own model, evaluator and checkpoints see the live weights), and one
`torch.func.vmap` over `functional_call` does the K forward and backward passes at once.
The plugins' own code draws each member's minibatch order, memory and memory samples
from the member's generators (the draws of a single run), and A-GEM's `project` runs
over the run dimension (the test g.g_ref < 0 per run, without a host synchronisation).

Hooks: each member's hooks outside the step fire as in `BaseTemplate`. Inside the step
the fleet runs A-GEM's reference gradient and projection itself, fires replay's
`before_forward` (its minibatch augmentation) per member, and fires every in-step hook
of the other plugins per member, in the template's order, around the batched pass:
those plugins must be `gradient_only` (they add to the loss as a value and change
gradients in place; during `after_backward` .. `after_update` each member's `p.grad` is
a view of its row of the fleet's gradient, so what they add lands there). So EWC, SI,
MAS, RWalk and GEM run their own per-step code, one implementation for a run alone and
in a fleet. Any other plugin with a hook inside the step is refused.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Hashable, Sequence
from typing import Any, NoReturn

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from agem.benchmarks.streams import Experience
from agem.core.captured_step import StepGraph, check_cuda_device, in_step_hooks
from agem.core.evaluation import EvaluationPlugin
from agem.core.hooks import HookTable, build_hook_table, fire
from agem.core.plugin import Plugin
from agem.core.template import BaseTemplate, experience_list
from agem.models.mlp import MLP
from agem.plugins.agem import SAMPLE_SEED_OFFSET, AGEMPlugin, project
from agem.plugins.memory import random_subset
from agem.plugins.replay import ReplayPlugin
from agem.strategies import AGEM, Replay
from agem.strategies.registry import strategy_specs


def fleet_classes() -> tuple[type[BaseTemplate], ...]:
    """The strategy classes a fleet trains: those the strategy registry marks `fleet`."""
    return tuple(spec.cls for spec in strategy_specs() if spec.fleet)


_METHOD_PLUGINS = (AGEMPlugin, ReplayPlugin)


def _fail(message: str) -> NoReturn:
    raise ValueError(f"fleet: {message}")


def _hyper(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}


def _check_member(m: Any, first: BaseTemplate) -> None:
    if type(m) not in fleet_classes():
        names = ", ".join(c.__name__ for c in fleet_classes())
        _fail(f"supports {names} strategies, got {type(m).__name__}")
    if type(m) is not type(first):
        _fail(f"members must use one strategy, got {type(first).__name__} and {type(m).__name__}")
    if not isinstance(m.model, MLP) or any(isinstance(x, nn.Dropout) for x in m.model.modules()):
        _fail(f"supports the MLP model without dropout, got {type(m.model).__name__}")
    if getattr(m, "cuda_graph", False):
        _fail("members must be built with cuda_graph=False (the fleet captures its own step)")
    shapes = [p.shape for p in m.model.parameters()]
    if shapes != [p.shape for p in first.model.parameters()]:
        _fail("members' models must have the same parameter shapes")
    if any(not p.requires_grad for p in m.model.parameters()):
        _fail("every model parameter must be trainable")
    opt = m.optimizer
    if len(opt.param_groups) != 1 or len(opt.param_groups[0]["params"]) != len(shapes):
        _fail("each member's optimizer must hold exactly its model's parameters, in one group")
    if type(opt) is not type(first.optimizer) or _hyper(opt) != _hyper(first.optimizer):
        _fail("members must use the same optimizer and hyperparameters")
    same = ("train_mb_size", "train_epochs", "device")
    if any(getattr(m, a) != getattr(first, a) for a in same):
        _fail(f"members must share {', '.join(same)}")
    for plugin in m.plugins:
        if isinstance(plugin, AGEMPlugin) and plugin.sampling != "uniform":
            _fail("A-GEM members need sampling='uniform'")
        if isinstance(plugin, ReplayPlugin) and plugin.class_balanced:
            _fail("replay members need class_balanced=False")
        fired = not isinstance(plugin, _METHOD_PLUGINS) and bool(in_step_hooks(plugin))
        if fired and not getattr(plugin, "gradient_only", False):
            hooks = ", ".join(in_step_hooks(plugin))
            _fail(
                f"plugin {type(plugin).__name__} has hooks inside the step ({hooks}) and is "
                f"not gradient_only"
            )


def _step_plugins(member: BaseTemplate) -> list[Any]:
    """The member's plugins whose in-step hooks the fleet fires (all but A-GEM and replay,
    whose step work the fleet does itself)."""
    return [p for p in member.plugins if not isinstance(p, _METHOD_PLUGINS) and in_step_hooks(p)]


class Fleet:
    """Train `members` (strategies differing only in their seed) in lockstep.

    Args:
        members: K strategies of one type (one the registry marks `fleet`: `Naive`,
            `AGEM`, `Replay`, `GEM`, `EWC`, `SI`, `MAS`, `RWalk`, `Cumulative`), each on its own
            MLP with the same shapes, optimizer type and hyperparameters, minibatch size,
            epochs and device. Their parameters are moved into the fleet's stacked
            tensor (they stay usable: each is a view of its row).
        cuda_graph: capture the stacked step in a CUDA graph (see `agem.core.captured_step`);
            `Naive` and `AGEM` only, on a CUDA device. A-GEM samples are then drawn on
            the device from the fleet's own generator (still uniform without
            replacement per run, but not the single runs' draws).
    """

    def __init__(self, members: Sequence[BaseTemplate], *, cuda_graph: bool = False) -> None:
        members = list(members)
        if not members:
            _fail("needs at least one member")
        if not isinstance(cuda_graph, bool):
            raise ValueError(f"cuda_graph must be True or False, got {cuda_graph!r}")
        first = members[0]
        for m in members:
            _check_member(m, first)
        if len({id(m.model) for m in members}) != len(members):
            _fail("members must not share a model")
        if cuda_graph:
            if isinstance(first, Replay):
                _fail("cuda_graph=True supports naive and agem members (replay reads the host)")
            if _step_plugins(first):
                names = ", ".join(type(p).__name__ for p in _step_plugins(first))
                _fail(f"cuda_graph=True supports naive and agem members, not {names}")
            check_cuda_device(first.device)
        self.members = members
        self.device = first.device
        self.criterion = first.criterion
        self.cuda_graph = cuda_graph
        self._layout = [(name, p.shape, p.numel()) for name, p in first.model.named_parameters()]
        self._hooks: list[HookTable] = [build_hook_table(_step_plugins(m), Plugin) for m in members]
        self._fires = any(_step_plugins(m) for m in members)
        rows = [torch.cat([p.detach().reshape(-1) for p in m.model.parameters()]) for m in members]
        self.flat = torch.stack(rows).to(self.device).requires_grad_(True)
        self._bind_members()
        self.optimizer = type(first.optimizer)([self.flat], **_hyper(first.optimizer))
        self._base = copy.deepcopy(first.model).to("meta")
        self.agem: list[AGEMPlugin] = [m.agem_plugin for m in members if isinstance(m, AGEM)]
        self._memory: tuple[Tensor, Tensor] | None = None
        self._generator: torch.Generator | None = None
        self.step_graph = StepGraph() if cuda_graph else None

    @property
    def size(self) -> int:
        """K: the number of runs."""
        return len(self.members)

    def _bind_members(self) -> None:
        """Make each member's parameters views of its row of `flat` (shared storage)."""
        data = self.flat.detach()
        for k, m in enumerate(self.members):
            offset = 0
            for p in m.model.parameters():
                n = p.numel()
                p.data = data[k, offset : offset + n].view_as(p)
                offset += n

    # ---- the stacked step ---------------------------------------------------------------
    def _member_loss(self, row: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        params, offset = {}, 0
        for name, shape, n in self._layout:
            params[name] = row[offset : offset + n].view(shape)
            offset += n
        out = functional_call(self._base, params, (x,))
        return self.criterion(out, y), out

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Per-run losses [K] and outputs [K, B, C] of inputs [K, B, ...], labels [K, B]."""
        losses, out = vmap(self._member_loss)(self.flat, x, y)
        return losses, out

    def _fire(self, hook: str, kwargs: dict[str, Any]) -> None:
        """Fire `hook` of each member's step plugins (see `_step_plugins`)."""
        for m, table in zip(self.members, self._hooks, strict=True):
            fire(table, hook, m, kwargs)

    def _bind_grads(self, grad: Tensor | None) -> None:
        """Make each member's `p.grad` a view of its row of `grad` (None: unset them)."""
        for k, m in enumerate(self.members):
            offset = 0
            for p in m.model.parameters():
                n = p.numel()
                p.grad = None if grad is None else grad[k, offset : offset + n].view_as(p)
                offset += n

    def _step(
        self,
        x: Tensor,
        y: Tensor,
        ref: tuple[Tensor, Tensor] | None,
        kwargs: dict[str, Any] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One SGD step of every run; with `ref`, A-GEM's reference gradient and projection;
        the members' in-step hooks (from `after_forward` on) fired around it."""
        kwargs = {} if kwargs is None else kwargs
        self.flat.grad = None
        g_ref = None
        if ref is not None:
            ref_losses, _ = self.losses(*ref)
            (g_ref,) = torch.autograd.grad(ref_losses.sum(), self.flat)
        losses, out = self.losses(x, y)
        if self._fires:
            outs, values = out.detach(), losses.detach()
            for k, m in enumerate(self.members):
                m.mb_output, m.loss, m.mb_loss = outs[k], values[k], values[k]
            self._fire("after_forward", kwargs)
            self._fire("before_backward", kwargs)
        losses.sum().backward()  # each run's gradient lands in its own row
        grad = self.flat.grad
        assert grad is not None
        if g_ref is not None:
            project(grad, g_ref)
        if self._fires:
            self._bind_grads(grad)
            self._fire("after_backward", kwargs)
            self._fire("before_update", kwargs)
        self.optimizer.step()
        if self._fires:
            self._fire("after_update", kwargs)
            self._bind_grads(None)
        return out, losses

    def _reference(self) -> tuple[Tensor, Tensor] | None:
        """The memory samples [K, S, ...] of this step, from each member's generator."""
        if self._memory is None:
            return None
        mx, my = self._memory
        picks = [plugin.sample_indices() for plugin in self.agem]
        if picks[0] is None:
            return mx, my
        idx = torch.stack([p for p in picks if p is not None])
        rows = torch.arange(self.size, device=idx.device).unsqueeze(1)
        return mx[rows, idx], my[rows, idx]

    def _graph_step(self, inputs: list[Tensor]) -> tuple[Tensor, Tensor]:
        x, y = inputs
        ref = None
        if self._memory is not None:
            mx, my = self._memory
            n, s = mx.shape[1], self.agem[0].sample_size
            if s < n:
                idx = random_subset(n, s, runs=self.size, generator=self._gen(), device=mx.device)
                rows = torch.arange(self.size, device=mx.device).unsqueeze(1)
                ref = (mx[rows, idx], my[rows, idx])
            else:
                ref = (mx, my)
        return self._step(x, y, ref)

    def _gen(self) -> torch.Generator:
        if self._generator is None:
            seed = self.members[0].seed + SAMPLE_SEED_OFFSET
            self._generator = torch.Generator(device=self.device).manual_seed(seed)
        return self._generator

    def _stack_memory(self) -> None:
        """Stack the members' A-GEM memories [K, n, ...] (once per experience)."""
        self._memory = None
        if not self.agem or self.agem[0].memory_x is None:
            return
        xs: list[Tensor] = []
        ys: list[Tensor] = []
        for plugin in self.agem:
            plugin.place(self.device)  # a no-op when the memory is already there
            if plugin.memory_x is None or plugin.memory_y is None:
                _fail("members' A-GEM memories differ in size")
            xs.append(plugin.memory_x)
            ys.append(plugin.memory_y)
        if len({x.shape for x in xs}) != 1:
            _fail("members' A-GEM memories differ in size")
        self._memory = (torch.stack(xs), torch.stack(ys))

    def sync_member_optimizers(self) -> None:
        """Give each member's optimizer its row of the fleet optimizer's state, so that a
        member's checkpoint continues it as a single run (momentum, Adam moments)."""
        for k, m in enumerate(self.members):
            params = list(m.model.parameters())
            m.optimizer.state.clear()
            for value_state in self.optimizer.state.values():
                offset = 0
                for p in params:
                    n = p.numel()
                    m.optimizer.state[p] = {
                        key: (
                            v[k, offset : offset + n].view_as(p).clone()
                            if isinstance(v, Tensor) and v.shape == self.flat.shape
                            else (v.clone() if isinstance(v, Tensor) else copy.deepcopy(v))
                        )
                        for key, v in value_state.items()
                    }
                    offset += n

    # ---- the loop ------------------------------------------------------------------------
    def train(
        self, experiences: Sequence[Experience | Sequence[Experience]], **kwargs: Any
    ) -> None:
        """Train member k on `experiences[k]` (an experience or a sequence), in lockstep."""
        if len(experiences) != self.size:
            _fail(
                f"train() needs one experience sequence per member ({self.size}), "
                f"got {len(experiences)}"
            )
        streams = [experience_list(e, "train") for e in experiences]
        if len({len(s) for s in streams}) != 1:
            _fail("members' experience sequences differ in length")
        try:
            for m in self.members:
                m.start_training(**kwargs)
            for exps in zip(*streams, strict=True):
                self._train_exp(list(exps), kwargs)
            for m in self.members:
                m.end_training(**kwargs)
        finally:
            for m in self.members:
                m.is_training = False

    def _train_exp(self, exps: list[Experience], kwargs: dict[str, Any]) -> None:
        members = self.members
        for m, exp in zip(members, exps, strict=True):
            m.start_experience(exp, **kwargs)
        if len({len(m.adapted_dataset) for m in members}) != 1:  # type: ignore[arg-type]
            _fail(f"experience {exps[0].current_experience} differs in size between members")
        self._stack_memory()
        for _ in range(members[0].train_epochs):
            loaders = [m.start_epoch(**kwargs) for m in members]
            for batch in zip(*loaders, strict=True):
                for m, mb in zip(members, batch, strict=True):
                    m.mbatch = mb
                self._iteration(kwargs)
            for m in members:
                m.end_epoch(**kwargs)
        done = time.perf_counter()
        for m in members:
            if isinstance(m.evaluator, EvaluationPlugin):
                # each run's time is the fleet's time for the experience, without the
                # earlier members' end-of-experience evaluations
                m.evaluator.exclude_from_timing(time.perf_counter() - done)
            m.end_experience(**kwargs)
        self._memory = None

    def _iteration(self, kwargs: dict[str, Any]) -> None:
        members = self.members
        self._fire("before_training_iteration", kwargs)
        for m in members:
            for plugin in m.plugins:
                if isinstance(plugin, ReplayPlugin):
                    plugin.before_forward(m, **kwargs)  # replay's augmentation, per run
        self._fire("before_forward", kwargs)
        x = torch.stack([m.mb_x for m in members])
        y = torch.stack([m.mb_y for m in members])
        graph = self.step_graph
        if graph is not None and y.shape[1] == members[0].train_mb_size:
            key: Hashable = (
                members[0].clock.train_exp_counter,
                tuple(x.shape),
                None if self._memory is None else tuple(self._memory[0].shape),
            )
            gens = [self._gen()] if self._memory is not None else []
            out, losses = graph.run(key, [x, y], self._graph_step, generators=gens)
            out, losses = out.detach().clone(), losses.detach().clone()
        else:
            out, losses = self._step(x, y, self._reference(), kwargs)
            out, losses = out.detach(), losses.detach()
        for k, m in enumerate(members):
            # a step plugin may have added its penalty's value to the member's loss
            m.mb_output, m.mb_loss = out[k], losses[k]
            m.loss = m.loss if self._fires else losses[k]
            for plugin in m.plugins:
                if isinstance(plugin, ReplayPlugin):
                    plugin.keep_own_samples(m)
            m.end_iteration(**kwargs)
