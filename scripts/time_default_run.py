"""Wall time of the default `agem run` (A-GEM on the embedded Permuted Digits), as a
newcomer runs it: a fresh process each time, imports and plots included.

    python scripts/time_default_run.py --repeats 5

Prints each repeat's wall time, its CPU time (user + system: close to what the run takes
on an idle machine) and the training time the run reports, the median of each, the
machine's CPU count and its load average before and after (a busy machine is slower:
say so beside any number quoted from here).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(folder: Path) -> tuple[float, float, float | None]:
    """(wall seconds, CPU seconds, the run's own "training N s") of one default `agem run`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "agem", "run", "--out", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = re.search(r"training ([0-9.]+) s", done.stdout)
    return wall, cpu, float(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be positive")
    load_before = os.getloadavg()
    walls, cpus, trains = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            wall, cpu, train = one_run(Path(tmp) / f"run{i}")
            walls.append(wall)
            cpus.append(cpu)
            if train is not None:
                trains.append(train)
            print(
                f"repeat {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU, training {train} s",
                flush=True,
            )
    load_after = os.getloadavg()
    print(
        f"cpus {os.cpu_count()}, load average (1 min) {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after"
    )
    print(
        f"median wall {statistics.median(walls):.1f} s (min {min(walls):.1f}, "
        f"max {max(walls):.1f}) over {len(walls)} runs"
    )
    print(f"median CPU time {statistics.median(cpus):.1f} s (user + system)")
    if trains:
        print(f"median training {statistics.median(trains):.1f} s")


if __name__ == "__main__":
    main()
