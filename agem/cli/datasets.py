"""`agem datasets`: each registered benchmark and where its files are, or that they are missing."""

from __future__ import annotations

import argparse
from pathlib import Path


def dataset_rows(data_dir: str | Path | None = None) -> list[tuple[str, str, str]]:
    """(benchmark, dataset, status) for every registered benchmark, without network.

    Searched as `agem run` searches: a `data_dir` alone, else the data root and then
    the system folders (such as /usr/share/datasets/fashion-mnist)."""
    from agem.benchmarks.registry import BENCHMARKS
    from agem.data import locate

    rows = []
    for name in sorted(BENCHMARKS):
        spec = BENCHMARKS[name]
        if spec.dataset is None:
            rows.append((name, "(embedded)", "available offline, nothing to download"))
            continue
        found = locate(spec.dataset, data_dir, system_dirs=data_dir is None)
        status = f"found: {found}" if found is not None else "missing"
        rows.append((name, spec.dataset, status))
    return rows


def format_datasets(data_dir: str | Path | None = None) -> str:
    """The `agem datasets` report: a table, then how to get each missing dataset."""
    from agem.data import DATASETS, data_root, search_dirs

    rows = dataset_rows(data_dir)
    head = ("benchmark", "dataset", "files")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"data root: {data_root(data_dir)} (--data-dir, else $AGEM_DATA, else ~/.cache/agem)"]
    system = [d for key in sorted(DATASETS) for d in DATASETS[key].system_dirs]
    if data_dir is None and system:
        lines.append(f"system folders, searched after it: {', '.join(system)}")
    elif system:
        lines.append("system folders are not searched when --data-dir is given")
    lines += [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in [head, *rows]]
    missing = sorted({r[1] for r in rows if r[2] == "missing"})
    for key in missing:
        source = DATASETS[key]
        lines.append("")
        lines.append(f"{source.title} ({key}) is missing: expected {source.expected()}.")
        searched = search_dirs(key, data_dir, system_dirs=data_dir is None)
        lines.append("  looked in: " + ", ".join(str(d) for d in searched))
        target = data_root(data_dir) / source.folders[0]
        lines.append(f"  download: automatic on first use (network needed) into {target}")
        lines.append(f"            or by hand from {source.mirrors[0]}")
        if source.apt_package:
            lines.append(f"  Debian/Ubuntu: apt-get install {source.apt_package}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Register the `datasets` subcommand."""
    p = sub.add_parser(
        "datasets",
        help="list the benchmarks and where their dataset files are",
        description="List every benchmark and where its dataset files were found, or that "
        "they are missing (no network used).",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset folder, searched alone as `agem run --data-dir` does (default "
        "$AGEM_DATA, else ~/.cache/agem, then system folders such as "
        "/usr/share/datasets/fashion-mnist)",
    )
    p.set_defaults(command="datasets")


def datasets_from_args(args: argparse.Namespace) -> int:
    """Print the report; exit status 0."""
    print(format_datasets(args.data_dir))
    return 0
