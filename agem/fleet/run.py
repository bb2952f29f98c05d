"""`agem run --fleet K`: K run folders `OUT/seed<s>` trained in lockstep by one `Fleet`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

FLEET_CLI_STRATEGIES = ("naive", "agem", "replay")


def member_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configs of the fleet's runs: seeds seed..seed+K-1, folders `out/seed<s>`.

    Each is the config the same run would have alone (`fleet` 1), so its config.json
    reruns it as a single run.
    """
    k = int(config.get("fleet", 1))
    if k < 1:
        raise ValueError(f"--fleet must be a positive integer, got {k}")
    if config["strategy"] not in FLEET_CLI_STRATEGIES:
        raise ValueError(
            f"--fleet supports --strategy {', '.join(FLEET_CLI_STRATEGIES)}, "
            f"not {config['strategy']}"
        )
    if config["model"] != "mlp" or config.get("task_labels"):
        raise ValueError("--fleet supports --model mlp without --task-labels")
    if config.get("cuda_graph") and config["strategy"] == "replay":
        raise ValueError("--fleet with --cuda-graph supports --strategy naive and agem")
    options = config.get("strategy_options", {})
    if config["strategy"] == "agem" and options.get("sampling", "uniform") != "uniform":
        raise ValueError("--fleet supports --sampling uniform")
    out = Path(config["out"])
    return [
        dict(config, seed=config["seed"] + i, out=str(out / f"seed{config['seed'] + i}"), fleet=1)
        for i in range(k)
    ]


def run_fleet(config: dict[str, Any], *, progress: bool | None = None) -> list[dict[str, Any]]:
    """Build the K runs of `config` as separate runs would be, train them as one `Fleet`,
    and write each run folder; returns each run's results. Only the first run reports
    on the console."""
    from agem.cli.run import finish_run, prepare_run
    from agem.fleet.fleet import Fleet

    configs = member_configs(config)
    prepared = [
        prepare_run(c, progress=progress, console=i == 0, capture=False)
        for i, c in enumerate(configs)
    ]
    fleet = Fleet([p.strategy for p in prepared], cuda_graph=bool(config.get("cuda_graph")))
    start = time.perf_counter()
    try:
        fleet.train([p.train_stream for p in prepared])
    finally:
        for p in prepared:
            p.tensorboard.close()
    seconds = time.perf_counter() - start
    results = []
    for p in prepared:
        p.results_writer.extra["fleet_size"] = len(prepared)
        results.append(finish_run(p, seconds=seconds))
    return results
