"""What one `agem run` costs beyond its own work: start-up, imports, plots, exit.

Each variant is a fresh `python -X importtime -m agem run ...` process (by default the
defaults, and `--no-plots --logger csv`), run in turn with a process that only imports
torch (`python -c "import torch"`: interpreter start, torch's import and its exit),
repeated. For each process it records the wall time, the run's own time
(`total_seconds` in results.json: training and evaluation) and the import trace. The
overhead is wall - the torch-only process's wall (just before) - total_seconds: what
the target "wall time <= torch import + 1.5 s + the run's own time" bounds. It is split
into the
import time of the optional heavy modules (torch._dynamo, TensorBoard, matplotlib,
wandb) where a process imported them, the other imports (agem's own, numpy, ...) and
the rest (interpreter start, building the run, plots, writing files, exit). The table
gives the medians over the repeats.

`--data KEY` instead times loading dataset KEY (`agem.data.load`) three ways, in turn:
decoding its files (no cache), reading the decoded arrays back from the cache (a fresh
process's first load) and a later load in the same process (the memo).

`--tree DIR` (repeatable) runs the same variants with another source tree first on the
import path (e.g. an older commit from `git archive`), alternating with this one, so
that a before/after comparison sees the same machine load:

    python scripts/benchmark_startup.py --repeats 5
    python scripts/benchmark_startup.py --data fashion-mnist --repeats 5
    git archive main | tar -x -C /tmp/before
    python scripts/benchmark_startup.py --repeats 5 --tree /tmp/before --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: groups of modules whose import time is reported: a name and the module prefixes
GROUPS = {
    "torch._dynamo": ("torch._dynamo",),
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "matplotlib": ("matplotlib", "mpl_toolkits"),
    "wandb": ("wandb",),
}
VARIANTS = {"defaults": (), "no-plots,csv": ("--no-plots", "--logger", "csv")}


def import_times(trace: str) -> dict[str, float]:
    """Seconds spent importing, from a `-X importtime` trace: "torch" (its first import,
    wherever it happens), each of `GROUPS` (the top-level imports of its modules, which
    are imported lazily, from functions), and "all" (every top-level import)."""
    found = {"all": 0.0}
    for line in trace.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        seconds = int(cumulative) / 1e6
        top = not name.startswith("  ")
        name = name.strip()
        if name == "torch" and "torch" not in found:
            found["torch"] = seconds
        if not top:
            continue
        found["all"] += seconds
        for group, prefixes in GROUPS.items():
            if any(name == p or name.startswith(p + ".") for p in prefixes):
                found[group] = found.get(group, 0.0) + seconds
    return found


def _env(tree: Path | None) -> dict[str, str]:
    """This environment, with `tree` first on the import path."""
    env = dict(os.environ)
    if tree is not None:
        paths = [str(tree), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def measure(tree: Path | None, extra: tuple[str, ...], out: Path) -> dict[str, float]:
    """One `agem run` process: wall, total_seconds, overhead and import times. It runs
    in `out`'s parent folder, so that `python -m` does not import the agem of the
    current folder instead of `tree`'s."""
    env = _env(tree)
    argv = [sys.executable, "-X", "importtime", "-m", "agem", "run", "--out", str(out), *extra]
    began = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, cwd=out.parent
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}): {tail[0]}")
    imports = import_times(proc.stderr)
    total = json.loads((out / "results.json").read_text())["total_seconds"]
    torch = imports.pop("torch", 0.0)
    every = imports.pop("all")
    row = {"wall": wall, "total_seconds": total, "import torch": torch}
    row.update({f"import {k}": v for k, v in imports.items()})
    row["other imports"] = every - sum(imports.values()) - torch
    row["not imports"] = wall - total - every  # interpreter, building, writing, exit
    return row


def torch_only(tree: Path | None) -> float:
    """Wall seconds of a process that imports torch and exits."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], env=_env(tree), check=True, cwd="/")
    return time.perf_counter() - began


def data_times(key: str, repeats: int) -> None:
    """Seconds to load dataset `key`: decoded, from the cache, from the memo (medians)."""
    from agem.data import load
    from agem.data.cache import CACHE_VARIABLE, clear_memo

    times: dict[str, list[float]] = {"decode": [], "cache": [], "memo": []}
    with tempfile.TemporaryDirectory(prefix="agem-cache-") as tmp:
        for _ in range(repeats):
            for how in times:
                os.environ[CACHE_VARIABLE] = "off" if how == "decode" else tmp
                if how != "memo":
                    clear_memo()
                began = time.perf_counter()
                (x_train, _), _ = load(key, download=False)
                int(x_train.sum())  # every byte read (the cache maps lazily)
                times[how].append(time.perf_counter() - began)
                if how == "decode":  # fill the cache for the next two
                    os.environ[CACHE_VARIABLE] = tmp
                    clear_memo()
                    load(key, download=False)
    for how, values in times.items():
        print(f"{key} {how}: median {statistics.median(values):.3f} s of {values}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=None, metavar="KEY", help="time loading KEY")
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    args = parser.parse_args()
    if args.data is not None:
        data_times(args.data, args.repeats)
        return
    trees: list[Path | None] = [None, *args.tree]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="agem-startup-") as tmp:
        for repeat in range(args.repeats):
            order = trees if repeat % 2 == 0 else trees[::-1]
            for tree in order:
                for variant, extra in VARIANTS.items():
                    if tree is not None and "--no-plots" in extra and not _has_no_plots(tree):
                        continue
                    out = Path(tmp) / f"r{len(rows)}"
                    baseline = torch_only(tree)  # just before: the same machine load
                    row = measure(tree, extra, out)
                    row["torch only"] = baseline
                    row["overhead"] = row["wall"] - row["total_seconds"] - baseline
                    label = "this tree" if tree is None else str(tree)
                    rows.append({"tree": label, "variant": variant, "repeat": repeat, **row})
                    print(json.dumps(rows[-1]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print()
    keys = ["wall", "total_seconds", "torch only", "overhead", "import torch"]
    keys += [*(f"import {g}" for g in GROUPS), "other imports", "not imports"]
    print("| tree | variant | " + " | ".join(keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    for label in dict.fromkeys(str(r["tree"]) for r in rows):
        for variant in VARIANTS:
            mine = [r for r in rows if r["tree"] == label and r["variant"] == variant]
            if not mine:
                continue
            cells = []
            for key in keys:
                values = [float(r[key]) for r in mine if key in r]  # type: ignore[arg-type]
                cells.append(f"{statistics.median(values):.2f}" if values else "-")
            print(f"| {label} | {variant} | " + " | ".join(cells) + " |")


def _has_no_plots(tree: Path) -> bool:
    """Whether the tree's `agem run` has `--no-plots` (older ones do not)."""
    config = tree / "agem" / "runs" / "config.py"
    return config.is_file() and '"--no-plots"' in config.read_text()


if __name__ == "__main__":
    main()
