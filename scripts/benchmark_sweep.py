"""What a sweep costs beyond its runs' own work: cold processes, warm workers, and the floor.

One sweep is timed three ways in this process, the order rotating each repeat so that
all see the same load at nearly the same moment:

- cold: each run a new `python -m agem run` process (`agem sweep --processes cold`);
- warm: each run a fork of a warm worker (`agem sweep`, the default);
- inline: each worker calls its runs one after another in its own process, no fork and
  no isolation (the floor: what any design that starts runs must at least pay).

For each, the overhead per run is (wall time - sum of the runs' own `total_seconds` /
workers) / runs: what starting, finishing and scheduling a run adds to training and
evaluating it. Printed, as medians over repeats: wall time, the runs' own time, the
overhead per run, and the wall time as a ratio to the floor's; also the load average.

    python scripts/benchmark_sweep.py                          # 24 short runs, 1 worker, 3 repeats
    python scripts/benchmark_sweep.py --readme --workers 2     # the README's 9-run sweep
    python scripts/benchmark_sweep.py --readme --workers 2 --engine ray --modes warm,cold
    python scripts/benchmark_sweep.py --runs 4 --repeats 1     # smoke test

`--engine ray` runs the cold and warm modes on Ray (`--ray-address`, or a local instance
with `--workers` CPUs) and the floor locally. `--json FILE` writes every measurement.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agem.sweeps.engines import PROCESSES, Engine, LocalEngine, RayEngine
from agem.sweeps.runner import run_sweep
from agem.sweeps.spec import parse_spec

SHORT = """
[base]
benchmark = "permuted_digits"
n_experiences = 2
hidden_sizes = [32]
patterns_per_experience = 100
lca_test_size = 100
[grid]
strategy = ["naive", "agem"]
seed = {seeds}
"""

README = """
[base]
benchmark = "permuted_digits"
n_experiences = 5
[grid]
strategy = ["naive", "ewc", "agem"]
seed = [0, 1, 2]
"""


def _engine(mode: str, args: argparse.Namespace) -> Engine:
    if args.engine == "ray" and mode != "inline":
        return RayEngine(address=args.ray_address, workers=args.workers, processes=mode)  # type: ignore[arg-type]
    return LocalEngine(workers=args.workers, processes=mode)  # type: ignore[arg-type]


def _own_seconds(out: Path) -> tuple[float, int]:
    """Sum of the runs' `total_seconds`, and how many runs completed."""
    total, runs = 0.0, 0
    for results in out.glob("*/results.json"):
        data = json.loads(results.read_text())
        if data.get("status") == "complete":
            total += float(data["total_seconds"])
            runs += 1
    return total, runs


def measure(mode: str, text: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    spec = parse_spec(text, source="benchmark")
    engine = _engine(mode, args)
    began = time.perf_counter()
    run_sweep(spec, out, engine=engine, parallel=args.workers, threads=1, stream=io.StringIO())
    wall = time.perf_counter() - began
    own, runs = _own_seconds(out)
    if runs != len(spec.jobs):
        raise SystemExit(f"{mode}: only {runs} of {len(spec.jobs)} runs completed in {out}")
    overhead = (wall - own / args.workers) / runs
    return {"mode": mode, "wall": wall, "own": own, "runs": runs, "overhead": overhead}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=24, help="short runs (an even number)")
    parser.add_argument("--readme", action="store_true", help="the README's 9-run sweep")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", default="cold,warm,inline")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in PROCESSES for m in modes):
        parser.error(f"--modes: a comma-separated list of {', '.join(PROCESSES)}")
    if args.runs < 2 or args.runs % 2:
        parser.error("--runs must be an even number of at least 2")
    text = README if args.readme else SHORT.format(seeds=list(range(args.runs // 2)))
    runs = len(parse_spec(text, source="benchmark").jobs)
    print(
        f"{runs} runs, {args.workers} worker(s), engine {args.engine}, {args.repeats} repeat(s), "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="agem-bench-sweep-") as scratch:
        for repeat in range(args.repeats):
            order = modes[repeat % len(modes) :] + modes[: repeat % len(modes)]
            for mode in order:
                result = measure(mode, text, Path(scratch) / f"{repeat}-{mode}", args)
                result["repeat"] = repeat
                result["load"] = os.getloadavg()[0]
                found.append(result)
                print(
                    f"  repeat {repeat} {mode:<6} wall {result['wall']:7.1f} s  runs' own "
                    f"{result['own']:6.1f} s  overhead/run {result['overhead']:5.2f} s  "
                    f"load {result['load']:.2f}",
                    flush=True,
                )
    median = {
        m: {k: statistics.median(r[k] for r in found if r["mode"] == m) for k in ("wall", "own")}
        for m in modes
    }
    for m in modes:
        median[m]["overhead"] = statistics.median(r["overhead"] for r in found if r["mode"] == m)
    floor = median.get("inline", {}).get("wall")
    print("\n| processes | wall s | runs' own s | overhead per run s | wall / floor |")
    print("|---|---|---|---|---|")
    for m in modes:
        ratio = f"{median[m]['wall'] / floor:.2f}" if floor else "-"
        row = median[m]
        print(f"| {m} | {row['wall']:.1f} | {row['own']:.1f} | {row['overhead']:.2f} | {ratio} |")
    if "cold" in median and "warm" in median:
        saved = median["cold"]["overhead"] / max(median["warm"]["overhead"], 1e-9)
        print(f"\ncold / warm overhead per run: {saved:.1f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": found}, indent=1))


if __name__ == "__main__":
    main()
