"""What checkpointing after every experience costs: `agem run` with and without it.

In one process, alternating (with, without, without, with, ...), the same A-GEM run
through `agem.runs.execute.run` — by default Permuted Fashion-MNIST, 10 experiences of
10,000 training patterns, the A-GEM defaults, `--threads 1`. For each run it reports the
run's wall time (`total_seconds`: training, evaluations, LCA probes, checkpoints), the
process CPU time of the whole call (data loading included; with one thread it is less
disturbed by other processes than the wall time) and the time spent capturing and
writing the checkpoints (`checkpoint_seconds`, fsync included). The overhead is given as
the ratios of mean wall and CPU times (with / without) and as the measured checkpoint
time over the wall time of the runs with checkpoints.

    python scripts/checkpoint_overhead.py                   # the full setting
    python scripts/checkpoint_overhead.py --benchmark permuted_digits --train-subset 500
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from agem.runs.config import RunConfig
from agem.runs.execute import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="permuted_fashion_mnist")
    parser.add_argument("--n-experiences", type=int, default=10)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind")
    parser.add_argument("--out", type=Path, default=None, help="where the run folders go")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    base = RunConfig(
        benchmark=args.benchmark,
        n_experiences=args.n_experiences,
        train_subset=args.train_subset,
        threads=args.threads,
        strategy="agem",
    )
    root = args.out or Path(tempfile.mkdtemp(prefix="agem-checkpoint-overhead-"))
    rows: list[dict[str, float | bool | int]] = []
    for repeat in range(args.repeats):
        for with_checkpoint in (True, False) if repeat % 2 == 0 else (False, True):
            config = dataclasses.replace(base, checkpoint=with_checkpoint)
            out = root / f"{'with' if with_checkpoint else 'without'}-{repeat}"
            cpu = time.process_time()
            results = run(config, out, overwrite=True, progress=False)
            cpu = time.process_time() - cpu
            size = (out / "checkpoint.pt").stat().st_size if with_checkpoint else 0
            row = {
                "checkpoint": with_checkpoint,
                "repeat": repeat,
                "total_seconds": results["total_seconds"],
                "cpu_seconds": cpu,
                "train_seconds": results["train_seconds"],
                "checkpoint_seconds": results["checkpoint_seconds"],
                "checkpoint_bytes": size,
                "A_T": results["A_T"],
            }
            rows.append(row)
            print(
                f"{'with   ' if with_checkpoint else 'without'} checkpoints, repeat {repeat}: "
                f"wall {row['total_seconds']:.2f} s, process CPU {cpu:.2f} s, "
                f"training {row['train_seconds']:.2f} s, "
                f"checkpoints {row['checkpoint_seconds']:.3f} s ({size / 2**20:.1f} MiB last), "
                f"A_T {row['A_T']:.4f}",
                flush=True,
            )
    with_ = [r for r in rows if r["checkpoint"]]
    without = [r for r in rows if not r["checkpoint"]]
    wall_with = statistics.mean(float(r["total_seconds"]) for r in with_)
    wall_without = statistics.mean(float(r["total_seconds"]) for r in without)
    spent = statistics.mean(float(r["checkpoint_seconds"]) for r in with_)
    cpu_with = statistics.mean(float(r["cpu_seconds"]) for r in with_)
    cpu_without = statistics.mean(float(r["cpu_seconds"]) for r in without)
    summary = {
        "wall_with": wall_with,
        "wall_without": wall_without,
        "wall_ratio": wall_with / wall_without,
        "cpu_with": cpu_with,
        "cpu_without": cpu_without,
        "cpu_ratio": cpu_with / cpu_without,
        "checkpoint_seconds": spent,
        "checkpoint_share": spent / wall_with,
        "same_A_T": len({r["A_T"] for r in rows}) == 1,
    }
    print(
        f"mean wall time: with {wall_with:.2f} s, without {wall_without:.2f} s, "
        f"ratio {summary['wall_ratio']:.4f}"
    )
    print(
        f"mean process CPU time (data loading included): with {cpu_with:.2f} s, "
        f"without {cpu_without:.2f} s, ratio {summary['cpu_ratio']:.4f}"
    )
    print(
        f"checkpointing: {spent:.3f} s per run = {100 * summary['checkpoint_share']:.2f}% "
        f"of the wall time; identical A_T across runs: {summary['same_A_T']}"
    )
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
