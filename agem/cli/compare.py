"""`agem compare RUN...`: a side-by-side table of run folders and a comparison plot.

Runs of the same configuration with different seeds are grouped: their metrics are
shown as mean ± std. The plot is written to `--out DIR/comparison.png` (default: the
current directory); `--no-plot` skips it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add the `compare` subcommand to the `agem` parser."""
    p = sub.add_parser(
        "compare",
        help="compare run folders side by side",
        description=(
            "Print a table of the runs' metrics (A_T, F_T, BWT, FWT, LCA_10, training time, "
            "peak memory), mean ± std over seeds of the same configuration, and write "
            "comparison.png."
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by `agem run`")
    p.add_argument(
        "--out",
        default=".",
        help="folder for comparison.png (default: the current directory)",
    )
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.set_defaults(command="compare")


def compare_from_args(args: argparse.Namespace) -> int:
    """Load every run (a ValueError names the first unusable folder), print, plot."""
    from agem.reporting.compare import comparison_rows, format_table, load_run

    runs = [load_run(path) for path in args.runs]
    rows = comparison_rows(runs)
    print(format_table(rows))
    if not args.no_plot:
        from agem.reporting.plots import plot_comparison

        target = Path(args.out) / "comparison.png"
        try:
            path = plot_comparison(rows, target)
        except OSError as err:
            raise ValueError(f"cannot write {target}: {err.strerror or err}") from None
        print(f"comparison plot: {path}")
    return 0
