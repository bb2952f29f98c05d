"""`GEMPlugin`: Gradient Episodic Memory (Lopez-Paz & Ranzato, NeurIPS 2017).

After each experience, `patterns_per_experience` of its training patterns are stored
(uniformly at random without replacement, from a generator seeded by the strategy's
seed). Before every training iteration, one gradient g_k per past experience k is
computed on that experience's whole memory; with g the flattened gradient of the
current minibatch (every trainable parameter, a missing gradient counting as zeros), if
any g.g_k < 0 the paper's dual quadratic program

    minimise_v  1/2 v^T G G^T v + g^T G^T v   subject to  v >= memory_strength

(G has the g_k as rows) is solved with quadprog in float64, and g is replaced by
g~ = G^T v + g. With `memory_strength = 0` this is exactly the projection of g onto
{z : G z >= 0} closest in L2; a positive margin biases the update towards improving the
memories (the paper's gamma). When no constraint is violated, g is left unchanged and
no QP is solved.

G G^T is symmetrised and given a ridge of 1e-9 times its mean diagonal, so that it is
positive definite (quadprog needs that) while the constraints stay satisfied to about
1e-9 |g.g_k| (a fixed ridge such as 1e-3 would leave violations of about 1e-3 v_k); it is
scaled to a unit diagonal first (an exact change of variables), so that memory gradients
of very different norms stay well conditioned.

Two solvers give the same v: quadprog on the host (`solver="quadprog"`, the exact
reference; it reads G g back to decide whether to solve), and a fixed-iteration active-set
method on the training device (`solver="device"`, `agem.plugins.gem_qp`), which never
synchronises with the host: the violation test selects g or g~ with `torch.where`.
`solver="auto"` takes quadprog on the CPU with fewer than 5 past experiences (faster
there: BENCHMARKS.md), and the device solver otherwise (on a GPU: no host
synchronisation per step). The memory gradients come from one
pass per past experience or one batched pass over all of them (`agem.plugins.gem_grads`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from agem.core.plugin import Plugin, check_settings
from agem.extras import require
from agem.plugins.gem_grads import BATCHED_FROM, BatchedGradients, loop_gradients
from agem.plugins.gem_grads import METHODS as GRADIENT_METHODS
from agem.plugins.gem_qp import project_and_test
from agem.plugins.memory import (
    FILLINGS,
    KeepBatchNormStats,
    batchnorm_modules,
    load_patterns,
    select_patterns,
)

if TYPE_CHECKING:
    from agem.core.template import BaseTemplate

RIDGE = 1e-9
SOLVERS = ("auto", "quadprog", "device")
#: "auto" on the CPU takes the device solver from this many past experiences on: there the
#: float64 Gram matrix of the quadprog path costs more than the fixed iterations
#: (measured in BENCHMARKS.md; below it quadprog is faster and solves only on conflicts)
CPU_DEVICE_SOLVER_FROM = 5

Memory = tuple[Tensor, Tensor, Tensor]


def solve_dual(G: Tensor, g: Tensor, margin: float) -> Tensor:
    """v solving GEM's dual QP: min 1/2 v^T (G G^T) v + (G g)^T v  s.t.  v >= margin.

    `G` is [K, P] (one memory gradient per row), `g` is [P]; solved by quadprog in
    float64 on the CPU. Returns v as a float64 CPU tensor of length K.
    """
    G64 = G.detach().to(torch.float64)
    P = G64 @ G64.T
    q = G64 @ g.detach().to(torch.float64)
    return _solve_gram(P, q, margin)


def _solve_gram(P: Tensor, q: Tensor, margin: float) -> Tensor:
    """`solve_dual` from the Gram matrix P = G G^T and q = G g (float64)."""
    import numpy as np
    import quadprog

    P = 0.5 * (P + P.T)
    k = P.shape[0]
    # Scaled to a unit diagonal (v = s * y, an exact change of variables): rows of G with
    # very different norms stay well conditioned under the ridge.
    diag = torch.diagonal(P)
    s = torch.where(diag > 0, diag.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 1.0)
    S = P * s[:, None] * s[None, :] + RIDGE * torch.eye(k, dtype=torch.float64, device=P.device)
    # quadprog: minimise 1/2 x^T P x - a^T x subject to C^T x >= b.
    y = quadprog.solve_qp(
        S.cpu().numpy(),
        -(q * s).cpu().numpy(),
        np.eye(k),
        (float(margin) / s).cpu().numpy(),
        0,
    )[0]
    return torch.from_numpy(np.asarray(y, dtype=np.float64)) * s.cpu()


def project(G: Tensor, g: Tensor, margin: float) -> Tensor:
    """GEM's update direction: g if G g >= 0, else G^T v + g with v from `solve_dual`."""
    if not bool((G @ g < 0).any()):
        return g
    G64, g64 = G.detach().to(torch.float64), g.detach().to(torch.float64)
    v = _solve_gram(G64 @ G64.T, G64 @ g64, margin).to(G64.device)
    return (v @ G64 + g64).to(g.dtype)


class GEMPlugin(Plugin):
    """Gradient Episodic Memory: keep the loss on every past experience's memory from rising.

    Args:
        patterns_per_experience: patterns stored from each experience (all if fewer).
        memory_strength: the margin gamma >= 0: the dual variables are bounded below by
            it (0.5 by default; 0 gives the plain projection).
        seed: seeds the memory generator; default the strategy's seed.
        solver: the dual QP's solver: "quadprog" (on the host, exact), "device" (on the
            training device, no host synchronisation: `agem.plugins.gem_qp`) or "auto"
            (quadprog on the CPU below `CPU_DEVICE_SOLVER_FROM` past experiences, else
            the device solver).
        memory_gradients: "loop" (one pass per past experience), "batched" (one pass
            over all of them; MLPs without BatchNorm, else the loop) or "auto" (batched
            from two past experiences on).
        memory_filling: "random" or "class_balanced" (see `AGEMPlugin`).

    Memories are kept per experience (by `current_experience`; training an experience
    again replaces its memory) as model inputs on the training device, with labels and
    task labels; each memory's task labels are passed to multi-head models. While an
    experience is trained, every *other* stored experience's memory is a constraint.
    """

    # G comes from its own passes over the memories, and the projection replaces
    # `p.grad` in place: a fleet fires these hooks per member
    gradient_only = True

    def __init__(
        self,
        patterns_per_experience: int,
        memory_strength: float = 0.5,
        *,
        seed: int | None = None,
        solver: str = "auto",
        memory_gradients: str = "auto",
        memory_filling: str = "random",
    ) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        if memory_gradients not in GRADIENT_METHODS:
            raise ValueError(
                f"memory_gradients must be one of {', '.join(GRADIENT_METHODS)}, "
                f"got {memory_gradients!r}"
            )
        if solver != "device":
            require("gem")  # quadprog: fail now with the pip command, not at the first conflict
        if (
            isinstance(patterns_per_experience, bool)
            or not isinstance(patterns_per_experience, int)
            or patterns_per_experience < 1
        ):
            raise ValueError(
                f"patterns_per_experience must be a positive integer, "
                f"got {patterns_per_experience!r}"
            )
        if (
            isinstance(memory_strength, bool)
            or not isinstance(memory_strength, (int, float))
            or not math.isfinite(memory_strength)
            or memory_strength < 0
        ):
            raise ValueError(
                f"memory_strength must be a finite number >= 0, got {memory_strength!r}"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if memory_filling not in FILLINGS[:2]:
            raise ValueError(
                f"memory_filling must be one of {FILLINGS[:2]} for GEM, got {memory_filling!r}"
            )
        self.memory_filling = memory_filling
        self.patterns_per_experience = patterns_per_experience
        self.memory_strength = float(memory_strength)
        self.seed = seed
        self.solver = solver
        self.memory_gradients = memory_gradients
        self.memories: dict[int, Memory] = {}
        self._generator: torch.Generator | None = None
        self._G: Tensor | None = None
        self._G_buffer: Tensor | None = None
        self._batched: tuple[tuple[Tensor, ...], BatchedGradients] | None = None
        self._solves = 0
        self._device_solves: Tensor | None = None  # counted on the device, read when asked

    @property
    def n_solves(self) -> int:
        """QPs solved so far (steps whose gradient violated a constraint), for diagnostics.

        With the device solver this reads a counter back from the device (a
        synchronisation): read it between experiences, not per step.
        """
        extra = int(self._device_solves.item()) if self._device_solves is not None else 0
        return self._solves + extra

    @n_solves.setter
    def n_solves(self, value: int) -> None:
        self._solves, self._device_solves = int(value), None

    def resolved_solver(self, device: torch.device, past: int) -> str:
        """The solver used on `device` with `past` past experiences (see `solver`)."""
        if self.solver != "auto":
            return self.solver
        if device.type == "cpu" and past < CPU_DEVICE_SOLVER_FROM:
            return "quadprog"
        return "device"

    # ---- memory -----------------------------------------------------------------
    def _gen(self, strategy: BaseTemplate) -> torch.Generator:
        if self._generator is None:
            seed = self.seed if self.seed is not None else strategy.seed
            self._generator = torch.Generator().manual_seed(seed)
        return self._generator

    def update_memory(self, strategy: BaseTemplate) -> None:
        """Store patterns of `strategy.experience`, uniformly without replacement (or
        class-balanced, with `memory_filling="class_balanced"`)."""
        exp = strategy.experience
        if exp is None:
            return
        idx = select_patterns(
            exp.dataset,
            self.patterns_per_experience,
            self._gen(strategy),
            filling=self.memory_filling,
        )
        x, y, t = load_patterns(exp.dataset, idx, task_label=max(exp.task_label, 0))
        device = strategy.device
        self.memories[exp.current_experience] = (x.to(device), y.to(device), t.to(device))

    def past_memories(self, strategy: BaseTemplate) -> list[Memory]:
        """The memories that constrain training on `strategy.experience`, by index."""
        current = strategy.experience.current_experience if strategy.experience else None
        return [m for k, m in sorted(self.memories.items()) if k != current]

    # ---- hooks ------------------------------------------------------------------
    def before_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        device = strategy.device
        self.memories = {
            k: (x.to(device), y.to(device), t.to(device)) for k, (x, y, t) in self.memories.items()
        }

    def before_training_iteration(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Compute G: one flattened gradient per past experience, on its whole memory."""
        self._G = None
        memories = self.past_memories(strategy)
        if not memories:
            return
        params = [p for p in strategy.model.parameters() if p.requires_grad]
        if not params:
            return
        total = sum(p.numel() for p in params)
        G = self._G_buffer
        p0 = params[0]
        if (
            G is None
            or G.shape != (len(memories), total)
            or (G.device, G.dtype) != (p0.device, p0.dtype)
        ):
            G = torch.empty(len(memories), total, dtype=p0.dtype, device=p0.device)
        self._G_buffer = G
        if not self._batched_gradients(strategy, params, memories, G):
            with KeepBatchNormStats(batchnorm_modules(strategy.model)):
                loop_gradients(strategy, params, memories, G)
        self._G = G

    def _batched_gradients(
        self, strategy: BaseTemplate, params: list[nn.Parameter], memories: list[Memory], G: Tensor
    ) -> bool:
        """Fill G in one batched pass if the settings and the model allow it."""
        if self.memory_gradients == "loop" or (
            self.memory_gradients == "auto" and len(memories) < BATCHED_FROM
        ):
            return False
        linears = BatchedGradients.applies(strategy.model, params)
        if not linears:
            return False
        cached = self._batched
        if (
            cached is None
            or len(cached[0]) != len(memories)
            or any(a is not m[0] for a, m in zip(cached[0], memories, strict=True))
        ):
            cached = self._batched = (tuple(m[0] for m in memories), BatchedGradients(memories))
        return cached[1](strategy, linears, params, G)

    def after_backward(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Replace g by G^T v + g when g conflicts with any past experience's gradient."""
        G = self._G
        if G is None:
            return
        params = [p for p in strategy.model.parameters() if p.requires_grad]
        g = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
        )
        if g.numel() != G.shape[1]:
            raise RuntimeError("the trainable parameters changed within a training iteration")
        if self.resolved_solver(G.device, G.shape[0]) == "device":
            new, violated = project_and_test(G, g, self.memory_strength)
            if self._device_solves is None:
                self._device_solves = torch.zeros((), dtype=torch.long, device=G.device)
            self._device_solves += violated.reshape(())  # no synchronisation
        else:
            new = project(G, g, self.memory_strength)
            if new is g:
                return
            self._solves += 1
        offset = 0
        for p in params:
            n = p.numel()
            view = new[offset : offset + n].view_as(p)
            if p.grad is None:
                p.grad = view.clone()
            else:
                p.grad.copy_(view)
            offset += n

    def after_training_exp(self, strategy: BaseTemplate, **kwargs: Any) -> None:
        """Store patterns of the experience just learned."""
        self._G = self._G_buffer = None
        self._batched = None
        self.update_memory(strategy)

    # ---- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self._settings(),
            "memories": {k: tuple(v.cpu() for v in m) for k, m in self.memories.items()},
            "generator": self._generator.get_state() if self._generator else None,
            "n_solves": self.n_solves,
        }

    def _settings(self) -> dict[str, Any]:
        return {
            "patterns_per_experience": self.patterns_per_experience,
            "memory_strength": self.memory_strength,
        }

    def check_state_dict(self, state: dict[str, Any]) -> None:
        """Refuse memories saved with other settings, or larger than they allow."""
        check_settings("GEM", state.get("settings"), self._settings())
        memories = state.get("memories")
        if not isinstance(memories, dict):
            raise ValueError("checkpoint GEM memories are malformed")
        for k, m in memories.items():
            if int(m[0].shape[0]) > self.patterns_per_experience:
                raise ValueError(
                    f"checkpoint GEM memory of experience {k} holds {int(m[0].shape[0])} "
                    f"patterns; this plugin stores {self.patterns_per_experience}"
                )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state_dict(state)
        self.memories = {int(k): (m[0], m[1], m[2]) for k, m in state["memories"].items()}
        self._G = self._G_buffer = None
        self._batched = None
        self._generator = None
        if state["generator"] is not None:
            self._generator = torch.Generator()
            self._generator.set_state(state["generator"])
        self.n_solves = int(state.get("n_solves", 0))
