"""Reporting: plots of a run's results and the comparison of several runs.

matplotlib is imported only when a plot is drawn.
"""

from agem.reporting.compare import (
    RunRecord,
    comparison_rows,
    format_table,
    load_run,
)
from agem.reporting.plots import (
    plot_accuracy_matrix,
    plot_accuracy_over_time,
    plot_comparison,
    plot_lca,
    write_run_plots,
)

__all__ = [
    "RunRecord",
    "comparison_rows",
    "format_table",
    "load_run",
    "plot_accuracy_matrix",
    "plot_accuracy_over_time",
    "plot_comparison",
    "plot_lca",
    "write_run_plots",
]
