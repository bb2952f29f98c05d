"""`AGEMPlugin`: Averaged Gradient Episodic Memory (Chaudhry et al., ICLR 2019).

After each experience, `patterns_per_experience` of its training patterns are stored
(uniformly at random, without replacement). Before every training iteration, the
reference gradient g_ref is computed on `min(sample_size, memory size)` patterns drawn
uniformly without replacement from the whole memory. After backward, with g the
flattened gradient of every trainable parameter, if g.g_ref < 0 then
g <- g - (g.g_ref / g_ref.g_ref) g_ref.

Hot path: the memory lives in tensors on the training device (model inputs, after the
dataset's transform); g and g_ref live in two flat buffers whose views are bound as the
parameters' `.grad`, so backward writes the flattened gradients directly (no
concatenation, no copy back); the projection is branch-free on the device (no host
synchronisation); memory samples are drawn by `randperm` on the device (no DataLoader).
(A `MultiHeadClassifier`'s own forward pass reads mixed task labels on the host; see it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from agem.plugins.base import Plugin, check_settings
from agem.plugins.memory import (
    FILLINGS,
    BatchNorm,
    ClassRing,
    KeepBatchNormStats,
    batchnorm_modules,
    load_patterns,
    random_subset,
    select_patterns,
)

if TYPE_CHECKING:
    from agem.template import BaseTemplate

SAMPLINGS = ("uniform", "balanced")
# The memory generator is seeded with the seed, the sampling one with seed + this offset.
SAMPLE_SEED_OFFSET = 0x5EED


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


@dataclass
class _FlatGrads:
    """Two flat buffers (g, g_ref) over a fixed list of parameters, with per-param views."""

    params: list[nn.Parameter]
    g: Tensor
    g_ref: Tensor
    g_views: list[Tensor]
    ref_views: list[Tensor]

    @classmethod
    def over(cls, params: list[nn.Parameter]) -> _FlatGrads:
        dtypes = {p.dtype for p in params}
        devices = {p.device for p in params}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(
                f"A-GEM needs every trainable parameter on one device and dtype, "
                f"got {sorted(map(str, dtypes))} on {sorted(map(str, devices))}"
            )
        total = sum(p.numel() for p in params)
        p0 = params[0]
        g = torch.zeros(total, dtype=p0.dtype, device=p0.device)
        g_ref = torch.zeros_like(g)
        return cls(params, g, g_ref, _views(g, params), _views(g_ref, params))

    def bind(self, views: list[Tensor]) -> None:
        for p, v in zip(self.params, views, strict=True):
            p.grad = v

    def gather_g(self) -> None:
        """Make g hold the parameters' current .grad (None as zeros) if it does not already.

        Normally backward has accumulated straight into g's views; this covers a plugin
        that replaced or cleared `.grad` in between.
        """
        if all(p.grad is v for p, v in zip(self.params, self.g_views, strict=True)):
            return
        for p, v in zip(self.params, self.g_views, strict=True):
            if p.grad is None:
                v.zero_()
            elif p.grad is not v:
                v.copy_(p.grad)
        self.bind(self.g_views)


def project(g: Tensor, g_ref: Tensor) -> None:
    """In place: g <- g - (g.g_ref / g_ref.g_ref) g_ref if g.g_ref < 0, else g unchanged.

    Branch-free, so a GPU never waits for the host: the coefficient g.g_ref / g_ref.g_ref
    is selected by `torch.where` where g_ref.g_ref > 0 (however small, subnormal values
    included) and is 0 otherwise, then clamped to <= 0, which is 0 exactly when
    g.g_ref >= 0. A zero g_ref leaves g unchanged with no NaN (the 0/0 is computed but
    never selected). `g_ref` is used as scratch space (it is left scaled by the
    coefficient). The product and the subtraction are rounded separately (no fused
    multiply-add), so the result is bit-identical to the textbook `g - (dot / ref_sq) * g_ref`.

    `g` and `g_ref` may also be [runs, P]: each row is projected on its own (the test
    g.g_ref < 0 is made per run, still without a host synchronisation).
    """
    if g.shape != g_ref.shape or g.dim() not in (1, 2):
        raise ValueError(
            f"project needs g and g_ref of one shape [P] or [runs, P], got "
            f"{tuple(g.shape)} and {tuple(g_ref.shape)}"
        )
    if g.dim() == 1:
        dot = torch.dot(g, g_ref)
        ref_sq = torch.dot(g_ref, g_ref)
    else:
        dot = torch.linalg.vecdot(g, g_ref).unsqueeze(-1)
        ref_sq = torch.linalg.vecdot(g_ref, g_ref).unsqueeze(-1)
    coef = torch.where(ref_sq > 0, dot / ref_sq, torch.zeros_like(dot)).clamp_max_(0.0)
    g.sub_(g_ref.mul_(coef))


def _views(flat: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    views, offset = [], 0
    for p in params:
        n = p.numel()
        views.append(flat[offset : offset + n].view_as(p))
        offset += n
    return views


class AGEMPlugin(Plugin):
    """Average Gradient Episodic Memory.

    Args:
        patterns_per_experience: patterns stored from each experience (all if fewer).
        sample_size: memory patterns per reference gradient (the whole memory if fewer).
        sampling: "uniform" (the paper's: a fresh uniform sample from the whole memory
            each iteration) or "balanced" (an equal share from each experience's memory,
            each share walked through in a reshuffled order so that every stored pattern
            is used once before any is reused).
        seed: seeds the memory and sampling generators; default the strategy's seed.
        memory_filling: "random" (patterns drawn uniformly from the experience),
            "class_balanced" (an equal number per class, as the authors' code stores
            25 per class; see `agem.plugins.memory.select_patterns`), or "ring_buffer"
            (the authors' later code: each class's last patterns_per_experience //
            classes examples seen while training, see `agem.plugins.memory.ClassRing`).

    The memory stores model inputs (after the dataset's transform) with their labels and
    task labels; each pattern's task label is passed to multi-task models.

    With `device_sampling = True` (set by strategies that capture their step in a CUDA
    graph) uniform samples are drawn from device-side random numbers, so that the draw
    can be captured and replayed; the sample is still uniform without replacement.
    """

    graph_safe = True

    def __init__(
        self,
        patterns_per_experience: int,
        sample_size: int,
        *,
        sampling: str = "uniform",
        seed: int | None = None,
        memory_filling: str = "random",
    ) -> None:
        if memory_filling not in FILLINGS:
            raise ValueError(f"memory_filling must be one of {FILLINGS}, got {memory_filling!r}")
        self.memory_filling = memory_filling
        self.patterns_per_experience = _positive_int(
            "patterns_per_experience", patterns_per_experience
        )
        self.sample_size = _positive_int("sample_size", sample_size)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.sampling = sampling
        self.seed = seed
        self.memory_x: Tensor | None = None
        self.memory_y: Tensor | None = None
        self.memory_t: Tensor | None = None
        self.experience_sizes: list[int] = []
        self._memory_gen: torch.Generator | None = None
        self._sample_gen: torch.Generator | None = None
        self._seed: int | None = None  # the seed in use: `seed`, else the strategy's
        self._grads: _FlatGrads | None = None
        self._grads_key: tuple[int, ...] = ()
        self._exp_key: tuple[int, int, int] = (0, -1, 0)
        self._all_params: list[nn.Parameter] = []
        self._flags: tuple[bool, ...] = ()
        self._batchnorms: list[BatchNorm] = []
        self._has_ref = False
        # balanced sampling: one shuffled order and a cursor per experience
        self._orders: list[Tensor] = []
        self._cursors: list[int] = []
        self._rotation = 0
        self.device_sampling = False
        self._ring: ClassRing | None = None

    # ---- memory -----------------------------------------------------------------
    @property
    def memory_size(self) -> int:
        return sum(self.experience_sizes)

    def _ensure_generators(self, strategy: BaseTemplate | None, device: torch.device) -> None:
        """Create the memory (CPU) and sampling (on the memory's device) generators once."""
        if self._seed is None:
            self._seed = self.seed if self.seed is not None else (strategy.seed if strategy else 0)
        if self._memory_gen is None:
            self._memory_gen = torch.Generator().manual_seed(self._seed)
        if self._sample_gen is None:
            self._sample_gen = torch.Generator(device=device).manual_seed(
                self._seed + SAMPLE_SEED_OFFSET
            )

    def _place(self, device: torch.device) -> None:
        """Move the memory (and the sampling state) to `device`, e.g. after loading."""
        if self.memory_x is not None and self.memory_y is not None and self.memory_t is not None:
            self.memory_x = self.memory_x.to(device)
            self.memory_y = self.memory_y.to(device)
            self.memory_t = self.memory_t.to(device)
        self._orders = [o.to(device) for o in self._orders]
        if self._sample_gen is not None and self._sample_gen.device.type != device.type:
            # A generator's state does not carry across device types: reseed, deterministically.
            seed = (self._seed or 0) + SAMPLE_SEED_OFFSET + self.memory_size
            self._sample_gen = torch.Generator(device=device).manual_seed(seed)

    def update_memory(
        self,
        dataset: Dataset[Any],
        num_workers: int = 0,
        *,
        strategy: BaseTemplate | None = None,
        device: torch.device | str | None = None,
        task_label: int = 0,
    ) -> None:
        """Add `patterns_per_experience` patterns of `dataset`, uniformly without replacement
        (or class-balanced, with `memory_filling="class_balanced"`).

        `dataset` is any map-style Dataset yielding (x, y) or (x, y, t); patterns without a
        task label get `task_label`. Only the selected patterns are loaded (in parallel
        when `num_workers > 0`).
        """
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        n = len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError("update_memory got an empty dataset")
        if device is None:
            device = strategy.device if strategy is not None else torch.device("cpu")
        device = torch.device(device)
        self._ensure_generators(strategy, device)
        self._place(device)
        assert self._memory_gen is not None
        idx = select_patterns(
            dataset, self.patterns_per_experience, self._memory_gen, filling=self.memory_filling
        )
        x, y, t = load_patterns(dataset, idx, num_workers=num_workers, task_label=task_label)
        self._append(x.to(device), y.to(device), t.to(device))

    def _append(self, x: Tensor, y: Tensor, t: Tensor) -> None:
        """Add one experience's patterns to the memory (on the memory's device)."""
        k = len(y)
        if self.memory_x is None or self.memory_y is None or self.memory_t is None:
            self.memory_x, self.memory_y, self.memory_t = x, y, t
        else:
            self.memory_x = torch.cat([self.memory_x, x])
            self.memory_y = torch.cat([self.memory_y, y])
            self.memory_t = torch.cat([self.memory_t, t])
        self.experience_sizes.append(k)
        if self.sampling == "balanced":
            self._orders.append(torch.randperm(k, generator=self._sample_gen, device=y.device))
            self._cursors.append(0)

    def sample_from_memory(self) -> tuple[Tensor, Tensor, Tensor]:
        """A sample (x, y, task labels) of min(sample_size, memory size) memory patterns.

        "uniform": drawn uniformly without replacement from the whole memory, fresh each
        call. "balanced": see `_balanced_indices`. Either way a sample_size at least the
        memory size gives the whole memory.
        """
        if self.memory_x is None or self.memory_y is None or self.memory_t is None:
            raise RuntimeError("the A-GEM memory is empty: train on an experience first")
        idx = self.sample_indices()
        if idx is None:
            return self.memory_x, self.memory_y, self.memory_t
        return self.memory_x[idx], self.memory_y[idx], self.memory_t[idx]

    def sample_indices(self) -> Tensor | None:
        """The memory indices of the next sample, or None for the whole memory.

        Draws from the sampling generator exactly as `sample_from_memory` does (which
        calls it), so a caller that gathers the sample itself (the fleet) sees the same
        draws as a single run.
        """
        if self.memory_y is None:
            raise RuntimeError("the A-GEM memory is empty: train on an experience first")
        n = self.memory_size
        if self.sample_size >= n:
            return None
        if self.sampling == "balanced":
            return self._balanced_indices()
        if self.device_sampling:
            return random_subset(
                n, self.sample_size, generator=self._sample_gen, device=self.memory_y.device
            )
        assert self._sample_gen is not None
        return torch.randperm(n, generator=self._sample_gen, device=self.memory_y.device)[
            : self.sample_size
        ]

    def _balanced_indices(self) -> Tensor:
        """Equal shares per experience, each continuing its experience's shuffled order.

        Each experience's memory is walked through in a random order; when the order is
        used up, a new one starts, so every stored pattern is used once before any is
        reused. Shares differ by at most one (the larger shares rotate between calls);
        an experience with fewer patterns than its share gives all of them and the rest
        goes to the others. A sample never holds the same pattern twice.
        """
        assert self.memory_y is not None and self._sample_gen is not None
        device = self.memory_y.device
        shares, self._rotation = _equal_shares(
            min(self.sample_size, self.memory_size), self.experience_sizes, self._rotation
        )
        parts, offset = [], 0
        for e, (size, share) in enumerate(zip(self.experience_sizes, shares, strict=True)):
            cursor, order = self._cursors[e], self._orders[e]
            take = min(share, size - cursor)
            part = order[cursor : cursor + take]
            cursor += take
            if cursor == size:  # this cycle is used up: start a new one
                order = torch.randperm(size, generator=self._sample_gen, device=device)
                need = share - take
                if need:
                    # Patterns just taken go last in the new cycle, so the rest of this
                    # share differs from them (without a host synchronisation).
                    just_used = torch.zeros(size, dtype=torch.long, device=device)
                    just_used[part] = 1
                    order = order[torch.argsort(just_used[order], stable=True)]
                    part = torch.cat([part, order[:need]])
                self._orders[e], cursor = order, need
            self._cursors[e] = cursor
            parts.append(part + offset)
            offset += size
        return torch.cat(parts)

    def graph_generators(self) -> list[torch.Generator]:
        """The generators a captured step draws from (to register with the CUDA graph)."""
        return [self._sample_gen] if self._sample_gen is not None else []

    # ---- hooks ------------------------------------------------------------------
    def _flat_grads(self, strategy: BaseTemplate) -> _FlatGrads:
        """The flat buffers over the trainable parameters, rebuilt when they change.

        The model's parameter list is re-read once per experience and whenever the
        optimizer gains a parameter group (new heads); each iteration only compares the
        tuple of `requires_grad` flags with the cached one (Python over the parameter
        tensors, no device work). When the trainable set changes (a layer frozen or
        unfrozen mid-experience) the buffers are rebuilt: a newly frozen parameter's
        `.grad` is unbound, so the optimizer no longer moves it, and a newly trainable
        one joins the projection.
        """
        key = (
            id(strategy.model),
            strategy.clock.train_exp_counter,
            len(strategy.optimizer.param_groups),
        )
        if key != self._exp_key:
            self._exp_key = key
            self._all_params = list(strategy.model.parameters())
            self._flags = ()
        flags = tuple(p.requires_grad for p in self._all_params)
        if self._grads is not None and flags == self._flags:
            return self._grads
        self._flags = flags
        params = [p for p, trainable in zip(self._all_params, flags, strict=True) if trainable]
        ids = tuple(id(p) for p in params)
        if self._grads is None or ids != self._grads_key:
            if not params:
                raise ValueError("A-GEM needs at least one trainable parameter")
            old = self._grads
            self._grads = _FlatGrads.over(params)
            self._grads_key = ids
            self._batchnorms = batchnorm_modules(strategy.model)
            if old is not None:
                kept = set(ids)
                for p in old.params:  # views of the old buffers must not outlive them
                    if id(p) not in kept:
                        p.grad = None
        return self._grads

    def before_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Compute the reference gradient g_ref on a memory sample."""
        self._has_ref = False
        if self.memory_y is None:
            return
        if self.memory_y.device != strategy.device:
            self._place(strategy.device)
        grads = self._flat_grads(strategy)
        x, y, t = self.sample_from_memory()
        grads.g_ref.zero_()
        grads.bind(grads.ref_views)
        if self._batchnorms:
            # Restored after backward: autograd saved the running statistics' versions.
            with KeepBatchNormStats(self._batchnorms):
                strategy.criterion(strategy.forward(x, t), y).backward()
        else:
            strategy.criterion(strategy.forward(x, t), y).backward()
        # The step's own gradient accumulates into g from here on.
        grads.g.zero_()
        grads.bind(grads.g_views)
        self._has_ref = True

    def after_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Project the gradient if it conflicts with the reference gradient."""
        if not self._has_ref or self._grads is None:
            return
        grads = self._grads
        grads.gather_g()
        project(grads.g, grads.g_ref)

    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Ring-buffer filling: empty rings for the experience's classes."""
        exp = strategy.experience
        if self.memory_filling != "ring_buffer" or exp is None:
            return
        classes = sorted(int(c) for c in exp.classes_in_this_experience)
        per_class = max(1, self.patterns_per_experience // len(classes))
        self._ring = ClassRing(classes, per_class, torch.device(strategy.device))

    def after_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Ring-buffer filling: write the minibatch just trained on into the rings."""
        if self._ring is not None:
            self._ring.add(strategy.mb_x, strategy.mb_y, strategy.mb_task_id)

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Store patterns of the experience just learned."""
        exp = strategy.experience
        if exp is None:
            return
        if self._ring is not None:  # ring-buffer filling: what the rings hold now
            taken, self._ring = self._ring.take(), None
            if taken is not None:
                device = torch.device(strategy.device)
                self._ensure_generators(strategy, device)
                self._place(device)
                self._append(*taken)
            return
        self.update_memory(
            exp.dataset,
            int(kwargs.get("num_workers", 0)),
            strategy=strategy,
            task_label=max(exp.task_label, 0),
        )

    # ---- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The memory, sampling state and generators (tensors on the CPU)."""

        def cpu(t: Tensor | None) -> Tensor | None:
            return t.cpu() if t is not None else None

        return {
            "settings": self._settings(),
            "seed": self._seed,
            "memory_x": cpu(self.memory_x),
            "memory_y": cpu(self.memory_y),
            "memory_t": cpu(self.memory_t),
            "experience_sizes": list(self.experience_sizes),
            "memory_gen": self._memory_gen.get_state() if self._memory_gen else None,
            "sample_gen": self._sample_gen.get_state() if self._sample_gen else None,
            "sample_device": str(self._sample_gen.device) if self._sample_gen else None,
            "orders": [o.cpu() for o in self._orders],
            "cursors": list(self._cursors),
            "rotation": self._rotation,
        }

    def _settings(self) -> dict[str, Any]:
        return {
            "patterns_per_experience": self.patterns_per_experience,
            "sample_size": self.sample_size,
            "sampling": self.sampling,
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse a memory saved with other settings, or one larger than they allow."""
        check_settings("A-GEM", state.get("settings"), self._settings())
        sizes = state.get("experience_sizes")
        memory_x = state.get("memory_x")
        if not isinstance(sizes, list) or not all(isinstance(k, int) for k in sizes):
            raise ValueError("checkpoint A-GEM memory sizes are malformed")
        if any(k > self.patterns_per_experience for k in sizes):
            raise ValueError(
                f"checkpoint A-GEM memory holds up to {max(sizes)} patterns per experience; "
                f"this plugin stores {self.patterns_per_experience}"
            )
        rows = 0 if memory_x is None else int(memory_x.shape[0])
        if rows != sum(sizes):
            raise ValueError(f"checkpoint A-GEM memory has {rows} patterns, sizes say {sum(sizes)}")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; the memory moves to the training device when used."""
        self.check_state_dict(state)
        self._seed = state["seed"]
        self.memory_x, self.memory_y, self.memory_t = (
            state["memory_x"],
            state["memory_y"],
            state["memory_t"],
        )
        self.experience_sizes = list(state["experience_sizes"])
        self._orders = list(state["orders"])
        self._cursors = list(state["cursors"])
        self._rotation = int(state["rotation"])
        self._memory_gen = None
        self._sample_gen = None
        if state["memory_gen"] is not None:
            self._memory_gen = torch.Generator()
            self._memory_gen.set_state(state["memory_gen"])
        if state["sample_gen"] is not None:
            device = torch.device(state["sample_device"])
            if device.type == "cuda" and not torch.cuda.is_available():
                # Saved on a GPU, loaded without one: a generator's state does not carry
                # across device types, so reseed deterministically (as `_place` does).
                device = torch.device("cpu")
                seed = (self._seed or 0) + SAMPLE_SEED_OFFSET + self.memory_size
                self._sample_gen = torch.Generator().manual_seed(seed)
            else:
                self._sample_gen = torch.Generator(device=device)
                self._sample_gen.set_state(state["sample_gen"])
            self._place(device)


def _equal_shares(total: int, sizes: list[int], rotation: int) -> tuple[list[int], int]:
    """Split `total` (<= sum(sizes)) into shares as equal as possible, capped by `sizes`.

    The shares one larger than the others start at experience `rotation`; returns the
    shares and the rotation for the next call.
    """
    n = len(sizes)
    shares = [0] * n
    left = total
    next_rotation = rotation
    first_round = True
    while left > 0:
        open_ = [e for e in range(n) if shares[e] < sizes[e]]
        base, extra = divmod(left, len(open_))
        ranked = sorted(open_, key=lambda e: (e - rotation) % n)
        for rank, e in enumerate(ranked):
            shares[e] = min(sizes[e], shares[e] + base + (1 if rank < extra else 0))
        if first_round:
            next_rotation = (ranked[extra % len(ranked)] if extra else rotation) % n
            first_round = False
        left = total - sum(shares)
    return shares, next_rotation
