"""The paper protocol's reported phase, timed per method: `benchmark_gpu.py --protocol`.

Every method of the `agem-paper-pfmnist` preset (its fixed options, the run defaults
otherwise) trains K seeds (default 5) on Permuted Fashion-MNIST (synthetic stand-in when
the files are missing), each way the library allows:

  eager        the K seeds one after another, `agem run` as it is
  captured     the same with the captured step (`--cuda-graph`; CUDA only)
  fleet        one `agem.fleet.Fleet` of the K seeds
  fleet_graph  that fleet with its step captured (CUDA only)

A way the run configuration refuses (e.g. `--cuda-graph` for EWC) is shown as "-".
Strategies are built as a run builds them (`agem.runs.factory`), without an evaluator;
"ms/run-step" is training wall time over minibatch steps and runs (median of repeats),
"wall s" the seconds of the fastest way for the K seeds here, and "protocol s" that
way's ms/run-step scaled to the full reported phase (17 experiences of 55,000 / 10
steps, K runs; evaluation not included).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from typing import Any

import torch

#: steps per run of the paper's reported phase: 17 experiences of 5,500 minibatches
PROTOCOL_STEPS = 17 * 5_500
WAYS = ("eager", "captured", "fleet", "fleet_graph")


def _methods() -> list[tuple[str, dict[str, Any]]]:
    from agem.sweeps.presets import get_preset

    protocol = get_preset("agem-paper-pfmnist")
    return [(m.name, dict(m.fixed)) for m in protocol.methods]


def _config(fixed: dict[str, Any], cfg: argparse.Namespace, **extra: Any) -> Any:
    from agem.runs.config import RunConfig

    options = {
        **fixed,
        "device": str(cfg.device),
        "hidden_sizes": tuple(cfg.hidden),
        "batch_size": cfg.batch_size,
        "patterns_per_experience": cfg.patterns_per_experience,
        "sample_size": cfg.sample_size,
        "mem_size": cfg.patterns_per_experience * cfg.experiences,
    }
    return RunConfig(**options, **extra)


def _allowed(fixed: dict[str, Any], cfg: argparse.Namespace, way: str) -> bool:
    extra: dict[str, Any] = {}
    if way in ("captured", "fleet_graph"):
        if cfg.device.type != "cuda":
            return False
        extra["cuda_graph"] = True
    if way.startswith("fleet"):
        extra["fleet"] = cfg.seeds
    try:
        _config(fixed, cfg, **extra)
    except ValueError:
        return False
    return True


def _benchmark(cfg: argparse.Namespace, task_labels: bool) -> Any:
    from benchmark_agem import permuted_fashion

    return permuted_fashion(
        cfg.experiences, seed=cfg.seed, train_subset=cfg.train_patterns,
        synthetic=cfg.synthetic, task_labels=task_labels,
    )  # fmt: skip


def _strategy(config: Any, bm: Any, seed: int, graph: bool) -> Any:
    from agem.runs.factory import build_model, build_optimizer, build_strategy
    from agem.strategies.registry import get_strategy

    config = dataclasses.replace(config, seed=seed, cuda_graph=graph)
    torch.manual_seed(seed)
    model = build_model(
        config.model, bm, hidden_sizes=config.hidden_sizes,
        progressive=get_strategy(config.strategy).progressive,
    )  # fmt: skip
    optimizer = build_optimizer(config, model)
    common: dict[str, Any] = {
        "train_mb_size": config.batch_size, "device": config.device, "seed": seed,
        "evaluator": False,
    }  # fmt: skip
    if graph:
        common["cuda_graph"] = True
    return build_strategy(config.strategy, model, optimizer, config.to_dict(), common)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_way(config: Any, bm: Any, cfg: argparse.Namespace, way: str, seed: int) -> float:
    """Seconds to train K seeds through `bm`'s training stream the way `way` says."""
    from agem.fleet import Fleet

    k, device = cfg.seeds, cfg.device
    graph = way in ("captured", "fleet_graph")
    members = [_strategy(config, bm, seed + i, graph and way == "captured") for i in range(k)]
    _sync(device)
    start = time.perf_counter()
    if way.startswith("fleet"):
        fleet = Fleet(members, cuda_graph=graph)
        for exp in bm.train_stream:
            fleet.train([exp] * k)
    else:
        for m in members:
            for exp in bm.train_stream:
                m.train(exp)
    _sync(device)
    return time.perf_counter() - start


def run_protocol(cfg: argparse.Namespace) -> dict[str, Any]:
    """Time every method every way it allows; print the table (last) and return it."""
    plain, data_name = _benchmark(cfg, False)
    labelled: Any = None
    steps = sum(math.ceil(len(e.dataset) / cfg.batch_size) for e in plain.train_stream)
    methods = [(n, f) for n, f in _methods() if not cfg.methods or n in cfg.methods]
    rows: dict[str, dict[str, Any]] = {}
    wall_total = 0.0
    for name, fixed in methods:
        if fixed.get("task_labels"):
            labelled = labelled or _benchmark(cfg, True)[0]
        bm = labelled if fixed.get("task_labels") else plain
        config = _config(fixed, cfg)
        ways = [w for w in WAYS if _allowed(fixed, cfg, w)]
        small = _warmup(bm)
        for way in ways:  # untimed: imports, allocator, kernels
            time_way(config, small, cfg, way, cfg.seed)
        times: dict[str, list[float]] = {w: [] for w in ways}
        for r in range(cfg.repeats):
            for way in ways[r % len(ways) :] + ways[: r % len(ways)]:
                times[way].append(time_way(config, bm, cfg, way, cfg.seed + 100 * r))
        ms = {w: 1000 * statistics.median(t) / (steps * cfg.seeds) for w, t in times.items()}
        best = min(ms, key=lambda w: ms[w])
        wall = statistics.median(times[best])
        wall_total += wall
        rows[name] = {"ms_per_run_step": ms, "best": best, "wall_s": wall,
                      "protocol_s": ms[best] * PROTOCOL_STEPS * cfg.seeds / 1000}  # fmt: skip
        print(f"{name}: " + ", ".join(f"{w} {v:.3f} ms" for w, v in ms.items()), flush=True)
    device = torch.cuda.get_device_name(cfg.device) if cfg.device.type == "cuda" else "CPU"
    print(
        f"\nprotocol timing: {data_name}, {cfg.experiences} experiences x {cfg.train_patterns} "
        f"patterns ({steps} steps per run), {cfg.seeds} seeds, MLP "
        f"{'-'.join(str(h) for h in cfg.hidden)}, minibatch {cfg.batch_size}; {device}, "
        f"torch {torch.__version__}; ms per run-step (median of {cfg.repeats})"
    )
    print(
        f"{'method':<12}" + "".join(f"{w:>12}" for w in WAYS) + f"{'wall s':>9}{'protocol s':>12}"
    )
    total = 0.0
    for name, row in rows.items():
        cells = "".join(
            f"{row['ms_per_run_step'][w]:12.3f}" if w in row["ms_per_run_step"] else f"{'-':>12}"
            for w in WAYS
        )
        total += row["protocol_s"]
        print(f"{name:<12}{cells}{row['wall_s']:9.2f}{row['protocol_s']:12.0f}")
    print(f"{'total':<12}{'':>48}{wall_total:9.2f}{total:12.0f}")
    return {"data": data_name, "device": device, "steps_per_run": steps, "methods": rows,
            "wall_s": wall_total, "protocol_s": total}  # fmt: skip


def _warmup(bm: Any) -> Any:
    """The first 2 experiences, 200 patterns each (warm-up only)."""
    from agem.benchmarks.streams import Stream

    first = torch.arange(min(200, len(bm.train_stream[0].dataset)))
    exps = [dataclasses.replace(e, dataset=e.dataset.subset(first)) for e in bm.train_stream[:2]]
    return dataclasses.replace(
        bm, train_stream=Stream("train", exps), test_stream=Stream("test", exps)
    )
