"""`ReplayPlugin`: experience replay from a reservoir buffer (Chaudhry et al., 2019).

Every training minibatch is concatenated with an equally large minibatch drawn
uniformly without replacement from the buffer, for one forward pass; the loss backward
uses is the criterion over both parts together, while the minibatch, `mb_output` and
`mb_loss` seen after the forward pass are the current samples' own (so training
statistics describe the experience being trained). Then the minibatch's own samples are
offered to the buffer by reservoir sampling (Vitter's algorithm R): the n-th sample ever
offered is stored while the buffer has room, and afterwards replaces a uniformly chosen
slot with probability mem_size / n. So at any time the buffer is a uniform sample of
every sample offered so far (all experiences, every epoch), and it never holds more
than `mem_size` samples.

With `class_balanced=True` the buffer is split equally between the classes seen so far
(earlier classes get the remainder), each class keeping its own reservoir; when a new
class appears, every class's share shrinks by keeping a uniform random subset, so each
class's part stays a uniform sample of that class.

The buffer lives in tensors on the training device. Each minibatch's reservoir update
is vectorised: one random draw per sample, and where several samples of a minibatch
pick the same slot the last one wins, exactly as if they were offered one by one. The
random draws and slot indices are made on the CPU, so the plain buffer never waits for
the device; the class-balanced one reads each minibatch's labels on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from agem.core.plugin import Plugin

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

_ALL = -1  # the single partition's key when not class-balanced
_INITIAL_ROWS = 1024  # first allocation of a plain buffer's tensors (then doubled)
_RANDPERM_MAX = 4096  # up to this many samples held, draw replay samples by randperm


def _distinct(n: int, k: int, generator: torch.Generator) -> Tensor:
    """min(k, n) distinct integers in [0, n), a uniformly random subset in random order.

    Up to `_RANDPERM_MAX` a prefix of `randperm(n)` (cheap there); above, the first k
    distinct values of uniform draws, which costs O(k) however large n is.
    """
    k = min(k, n)
    if n <= _RANDPERM_MAX:
        return torch.randperm(n, generator=generator)[:k]
    picked: dict[int, None] = {}
    while len(picked) < k:
        for v in torch.randint(n, (k - len(picked) + 8,), generator=generator).tolist():
            picked.setdefault(v, None)
            if len(picked) == k:
                break
    return torch.tensor(list(picked), dtype=torch.long)


@dataclass
class _Part:
    """A contiguous range of buffer slots holding one reservoir."""

    start: int
    capacity: int
    filled: int = 0
    seen: int = 0


class ReplayPlugin(Plugin):
    """Experience replay with a reservoir buffer of at most `mem_size` samples.

    Args:
        mem_size: the buffer's capacity in samples.
        class_balanced: split the buffer equally between the classes seen so far.
        seed: seeds the buffer's generator; default the strategy's seed.

    The buffer holds model inputs (after the dataset's transform), labels and task
    labels; replayed samples keep their own task labels.
    """

    def __init__(
        self, mem_size: int, *, class_balanced: bool = False, seed: int | None = None
    ) -> None:
        if isinstance(mem_size, bool) or not isinstance(mem_size, int) or mem_size < 1:
            raise ValueError(f"mem_size must be a positive integer, got {mem_size!r}")
        if not isinstance(class_balanced, bool):
            raise ValueError(f"class_balanced must be True or False, got {class_balanced!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.mem_size = mem_size
        self.class_balanced = class_balanced
        self.seed = seed
        self.buffer_x: Tensor | None = None
        self.buffer_y: Tensor | None = None
        self.buffer_t: Tensor | None = None
        self.parts: dict[int, _Part] = {}
        if not class_balanced:
            self.parts[_ALL] = _Part(0, mem_size)
        self._generator: torch.Generator | None = None
        self._valid: Tensor | None = None  # filled slots, cached between updates
        self._current: list[Tensor] | None = None  # the minibatch before replay was added
        self._replayed: tuple[Tensor, Tensor] | None = None  # replayed outputs and labels

    # ---- buffer -----------------------------------------------------------------
    @property
    def size(self) -> int:
        """Samples held now (never more than `mem_size`)."""
        return sum(p.filled for p in self.parts.values())

    def _gen(self, strategy: BaseTemplate | None = None) -> torch.Generator:
        if self._generator is None:
            seed = self.seed if self.seed is not None else (strategy.seed if strategy else 0)
            self._generator = torch.Generator().manual_seed(seed)
        return self._generator

    def valid_slots(self) -> Tensor:
        """Indices (CPU, long) of the filled buffer slots."""
        if self._valid is None:
            ranges = [
                torch.arange(p.start, p.start + p.filled) for p in self.parts.values() if p.filled
            ]
            self._valid = torch.cat(ranges) if ranges else torch.zeros(0, dtype=torch.long)
        return self._valid

    def memory(self) -> tuple[Tensor, Tensor, Tensor]:
        """Every sample held, as (x, y, task labels)."""
        if self.buffer_x is None or self.buffer_y is None or self.buffer_t is None:
            raise RuntimeError("the replay buffer is empty")
        idx = self.valid_slots().to(self.buffer_y.device)
        return self.buffer_x[idx], self.buffer_y[idx], self.buffer_t[idx]

    def sample(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """min(k, size) samples drawn uniformly without replacement from the buffer.

        Costs O(k), not O(size) or O(mem_size): k distinct ranks among the samples held
        are drawn (`_distinct`) and mapped to their slots through the partitions.
        """
        if self.buffer_x is None or self.buffer_y is None or self.buffer_t is None:
            raise RuntimeError("the replay buffer is empty")
        pick = _distinct(self.size, k, self._gen())
        idx = self._slots_of_ranks(pick).to(self.buffer_y.device)
        return self.buffer_x[idx], self.buffer_y[idx], self.buffer_t[idx]

    def _slots_of_ranks(self, ranks: Tensor) -> Tensor:
        """The slot of each rank r in `valid_slots()` (the filled slots, partition by
        partition), without building that list."""
        parts = [p for p in self.parts.values() if p.filled]
        if len(parts) == 1:
            return ranks + parts[0].start
        filled = torch.tensor([p.filled for p in parts])
        ends = torch.cumsum(filled, 0)
        which = torch.searchsorted(ends, ranks, right=True)
        starts = torch.tensor([p.start for p in parts])
        return starts[which] + ranks - (ends - filled)[which]

    def _allocate(self, x: Tensor, y: Tensor, t: Tensor, rows: int) -> None:
        self.buffer_x = torch.zeros((rows, *x.shape[1:]), dtype=x.dtype, device=x.device)
        self.buffer_y = torch.zeros(rows, dtype=y.dtype, device=y.device)
        self.buffer_t = torch.zeros(rows, dtype=t.dtype, device=t.device)

    def _grow(self, rows: int) -> None:
        """Make the buffer tensors hold at least `rows` slots (doubling, up to mem_size)."""
        assert self.buffer_x is not None and self.buffer_y is not None
        assert self.buffer_t is not None
        have = self.buffer_y.shape[0]
        if rows <= have:
            return
        size = min(self.mem_size, max(rows, 2 * have))
        for name in ("buffer_x", "buffer_y", "buffer_t"):
            old = getattr(self, name)
            new = old.new_zeros((size, *old.shape[1:]))
            new[:have] = old
            setattr(self, name, new)

    def update(self, x: Tensor, y: Tensor, t: Tensor) -> None:
        """Offer the samples (in order) to the reservoir."""
        if y.numel() == 0:
            return
        if self.buffer_x is None:
            # The plain reservoir fills slots 0, 1, ... in order: its tensors grow with
            # the samples held. Class-balanced partitions spread over all of mem_size.
            rows = self.mem_size if self.class_balanced else min(self.mem_size, _INITIAL_ROWS)
            self._allocate(x, y, t, rows)
        assert self.buffer_x is not None
        if x.shape[1:] != self.buffer_x.shape[1:]:
            raise ValueError(
                f"replay buffer holds inputs of shape {tuple(self.buffer_x.shape[1:])}, "
                f"got {tuple(x.shape[1:])}"
            )
        if not self.class_balanced:
            self._offer(self.parts[_ALL], torch.arange(y.shape[0]), x, y, t)
        else:
            labels = y.cpu()
            classes = [int(c) for c in torch.unique(labels).tolist()]
            new = [c for c in classes if c not in self.parts]
            if new:
                self._relayout([*self.parts, *new])
            for c in classes:
                self._offer(self.parts[c], torch.nonzero(labels == c).flatten(), x, y, t)
        self._valid = None

    def _offer(self, part: _Part, sel: Tensor, x: Tensor, y: Tensor, t: Tensor) -> None:
        """Reservoir-update one partition with the batch rows `sel` (CPU indices, in order)."""
        b = sel.numel()
        pos = part.seen + torch.arange(b, dtype=torch.float64)  # 0-based arrival index
        draw = torch.floor(torch.rand(b, generator=self._gen(), dtype=torch.float64) * (pos + 1))
        slot = torch.where(pos < part.capacity, pos, draw).long()
        part.seen += b
        part.filled = min(part.seen, part.capacity)
        keep = slot < part.capacity
        slot, src = slot[keep], sel[keep]
        if slot.numel() == 0:
            return
        # The last sample offered to a slot wins (as when offered one at a time): sort
        # by slot, ties in arrival order, and keep each slot's last entry. O(b log b)
        # in the minibatch size b, whatever the capacity.
        order = torch.argsort(slot, stable=True)
        slot, src = slot[order], src[order]
        last = torch.ones(slot.numel(), dtype=torch.bool)
        last[:-1] = slot[1:] != slot[:-1]
        slot, src = slot[last], src[last]
        if not self.class_balanced:
            self._grow(int(slot[-1]) + part.start + 1)  # slots are CPU indices: no sync
        self._write(part.start + slot, src, x, y, t)

    def _write(self, dst: Tensor, src: Tensor, x: Tensor, y: Tensor, t: Tensor) -> None:
        assert self.buffer_x is not None and self.buffer_y is not None
        assert self.buffer_t is not None
        device = self.buffer_y.device
        dst, src = dst.to(device), src.to(x.device)
        self.buffer_x[dst] = x[src].to(self.buffer_x.dtype)
        self.buffer_y[dst] = y[src.to(y.device)].to(device)
        self.buffer_t[dst] = t[src.to(t.device)].to(device)

    def _relayout(self, classes: list[int]) -> None:
        """Share the buffer equally between `classes`; shrink old shares uniformly."""
        assert self.buffer_x is not None and self.buffer_y is not None
        assert self.buffer_t is not None
        base, extra = divmod(self.mem_size, len(classes))
        parts: dict[int, _Part] = {}
        src, dst = [], []
        start = 0
        for i, c in enumerate(classes):
            cap = base + (1 if i < extra else 0)
            old = self.parts.get(c)
            part = _Part(start, cap)
            if old is not None:
                keep = min(old.filled, cap)
                pick = torch.randperm(old.filled, generator=self._gen())[:keep]
                src.append(old.start + pick)
                dst.append(torch.arange(start, start + keep))
                part.filled, part.seen = keep, old.seen
            parts[c] = part
            start += cap
        if src:
            device = self.buffer_y.device
            s, d = torch.cat(src).to(device), torch.cat(dst).to(device)
            for name in ("buffer_x", "buffer_y", "buffer_t"):
                old_buf = getattr(self, name)
                new_buf = torch.zeros_like(old_buf)
                new_buf[d] = old_buf[s]
                setattr(self, name, new_buf)
        self.parts = parts
        self._valid = None

    # ---- hooks ------------------------------------------------------------------
    def before_training(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        self._gen(strategy)
        device = strategy.device
        for name in ("buffer_x", "buffer_y", "buffer_t"):
            buf = getattr(self, name)
            if buf is not None:
                setattr(self, name, buf.to(device))

    def before_forward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Append a replayed minibatch, then offer the new samples to the reservoir."""
        x, y, t = strategy.mb_x, strategy.mb_y, strategy.mb_task_id
        replay = self.sample(y.shape[0]) if self.size > 0 else None
        self.update(x.detach(), y, t)
        self._current = None
        if replay is not None:
            self._current = strategy.mbatch
            mx, my, mt = replay
            strategy.mbatch = [
                torch.cat([x, mx.to(x.dtype)]),
                torch.cat([y, my]),
                torch.cat([t, mt]),
            ]

    def after_forward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Split the output: the minibatch and `mb_output` become the current samples'.

        So the template's loss (`mb_loss`) and the evaluator's training statistics are
        those of the experience's own samples; the replayed part is kept for the loss.
        """
        if self._current is None or strategy.mb_output is None:
            self._replayed = None
            return
        n = int(self._current[1].shape[0])
        out, y = strategy.mb_output, strategy.mb_y
        self._replayed = (out[n:], y[n:])
        strategy.mbatch = self._current
        strategy.mb_output = out[:n]
        self._current = None

    def keep_own_samples(self, strategy: BaseTemplate) -> None:
        """After a step that skipped `after_forward` and trained on the current and
        replayed samples together (the fleet's batched step): the minibatch, `mb_output`
        and `mb_loss` become the current samples' own, as in a single run."""
        if self._current is None:
            return
        current, self._current, self._replayed = self._current, None, None
        if strategy.mb_output is None:
            raise RuntimeError("keep_own_samples comes after the step (mb_output is unset)")
        n = int(current[1].shape[0])
        strategy.mbatch = current
        strategy.mb_output = strategy.mb_output[:n]
        strategy.mb_loss = strategy.criterion(strategy.mb_output, strategy.mb_y).detach()

    def before_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """The loss backward uses: the criterion over current and replayed samples together."""
        if self._replayed is None or strategy.loss is None or strategy.mb_output is None:
            return
        out, y = self._replayed
        self._replayed = None
        both = strategy.criterion(
            torch.cat([strategy.mb_output, out]), torch.cat([strategy.mb_y, y])
        )
        own = strategy.mb_loss
        if own is None or strategy.loss is own:
            strategy.loss = both
        else:  # another plugin added to the loss (e.g. a penalty): keep its part
            strategy.loss = strategy.loss + (both - own)

    # ---- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        def cpu(v: Tensor | None) -> Tensor | None:
            return v.cpu() if v is not None else None

        return {
            "buffer_x": cpu(self.buffer_x),
            "buffer_y": cpu(self.buffer_y),
            "buffer_t": cpu(self.buffer_t),
            "parts": {k: (p.start, p.capacity, p.filled, p.seen) for k, p in self.parts.items()},
            "generator": self._generator.get_state() if self._generator else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer_x = state["buffer_x"]
        self.buffer_y = state["buffer_y"]
        self.buffer_t = state["buffer_t"]
        self.parts = {int(k): _Part(*v) for k, v in state["parts"].items()}
        self._generator = None
        if state["generator"] is not None:
            self._generator = torch.Generator()
            self._generator.set_state(state["generator"])
        self._valid = None
