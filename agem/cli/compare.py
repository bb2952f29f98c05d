"""`agem compare RUN...`: a side-by-side table of run folders and a comparison plot.

Runs of the same configuration with different seeds are grouped: their metrics are
shown as mean ± std over distinct seeds. Only complete runs are compared; the others
are listed below the table with their status. A sweep folder stands for all its runs,
and a folder given twice counts once. `--format md|csv|latex` prints the table for a
document. The plot is written beside the inputs (into the sweep folder when one sweep is
compared, else the folder that holds the compared runs) or to `--out DIR`, as
comparison.png and/or .pdf, .svg (`--plot-format`); `--no-plot` skips it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add the `compare` subcommand to the `agem` parser."""
    p = sub.add_parser(
        "compare",
        help="compare run folders side by side",
        description=(
            "Print a table of the runs' metrics (A_T, F_T, BWT, FWT, LCA_10, training time, "
            "peak memory), mean ± std over seeds of the same configuration, and write "
            "comparison.png beside the runs."
        ),
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folders written by `agem run`, or sweep folders written by `agem sweep`",
    )
    p.add_argument(
        "--format",
        choices=("text", "md", "csv", "latex"),
        default="text",
        help="table format (default text; md, csv and latex for documents)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for the comparison figure (default: beside the inputs: the sweep "
        "folder when one sweep is compared, else the folder holding the compared runs)",
    )
    p.add_argument(
        "--plot-format",
        default=None,
        metavar="FORMATS",
        help="figure formats, comma-separated: png, pdf, svg (default png)",
    )
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.set_defaults(command="compare")


def default_out(runs: list[str]) -> Path:
    """Where the comparison figure goes by default: the folder the inputs share (a sweep
    folder stands for itself, a run folder for the folder that holds it)."""
    from agem.reporting.compare import is_sweep_folder

    places = [
        str(p.resolve() if is_sweep_folder(p) else p.resolve().parent) for p in map(Path, runs)
    ]
    return Path(os.path.commonpath(places))


def compare_from_args(args: argparse.Namespace) -> int:
    """Load every run (a ValueError names the first unusable folder), print, plot."""
    import sys

    from agem.reporting.compare import FORMATS, comparison_rows, load_runs, split_complete
    from agem.reporting.plots import DEFAULT_PLOT_FORMAT, plot_formats

    try:
        formats = plot_formats(
            DEFAULT_PLOT_FORMAT if args.plot_format is None else args.plot_format
        )
    except ValueError as err:
        raise ValueError(f"--plot-format: {err}") from None
    complete, incomplete = split_complete(load_runs(args.runs))
    rows = comparison_rows(complete)
    info = sys.stdout if args.format == "text" else sys.stderr  # keep md/csv/latex clean
    if rows:
        print(FORMATS[args.format](rows))
    else:
        print("no complete runs to compare", file=info)
    if incomplete:
        print(f"incomplete runs, not compared ({len(incomplete)}):", file=info)
        for run in incomplete:
            print(f"  {run.path}  {run.status}", file=info)
    if rows and not args.no_plot:
        from agem.reporting.plots import plot_comparison

        target = (default_out(args.runs) if args.out is None else Path(args.out)) / "comparison"
        try:
            paths = plot_comparison(rows, target, formats=formats)
        except OSError as err:
            raise ValueError(f"cannot write {target}: {err.strerror or err}") from None
        print(f"comparison plot: {', '.join(map(str, paths))}", file=info)
    return 0 if rows else 1
