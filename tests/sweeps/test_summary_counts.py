"""The sweep summary counts, per metric, only the values it averaged, and lists the
complete runs that lacked one."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from agem.reporting.compare import RunRecord
from agem.sweeps.summary import summarize, to_csv, to_markdown


def _run(name: str, seed: int, **values: float) -> RunRecord:
    return RunRecord(Path(name), {"seed": seed}, {"status": "complete", **values})


def test_a_run_without_a_metric_is_not_counted_for_it_and_is_listed() -> None:
    runs = [
        _run("strategy-agem_seed-0", 0, A_T=0.8, F_T=0.1),
        _run("strategy-agem_seed-1", 1, F_T=0.3),  # complete, yet no A_T
    ]
    (row,) = summarize([({"strategy": "agem"}, runs)])
    assert row.metrics["A_T"] == (0.8, None)
    assert row.counts["A_T"] == 1 and row.counts["F_T"] == 2
    assert row.missing["A_T"] == ("strategy-agem_seed-1",)
    (line,) = csv.DictReader(io.StringIO(to_csv([row])))
    assert line["seeds"] == "2" and line["A_T_n"] == "1" and line["F_T_n"] == "2"
    md = to_markdown([row])
    assert "0.8000 (n=1)" in md
    assert "strategy=agem: A_T missing in strategy-agem_seed-1 (averaged over 1 of 2)" in md
