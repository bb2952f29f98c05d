"""`scripts/benchmark_gpu.py --protocol` runs on a CPU with tiny sizes and prints its table:
every method asked for, "-" for each way the run configuration refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--hidden", "8", "--experiences", "2", "--train-patterns", "40", "--repeats", "1"]
TINY += ["--synthetic", "--seeds", "2", "--patterns-per-experience", "5", "--sample-size", "5"]


@pytest.mark.slow
def test_protocol_mode_times_each_method_each_way_it_allows(tmp_path: Path) -> None:
    out = tmp_path / "protocol.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark_gpu.py"), "--protocol", "--device",
         "cpu", "--threads", "1", "--methods", "naive,si,pnn", *TINY, "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    assert lines[header].split() == [
        "method", "eager", "captured", "fleet", "fleet_graph", "wall", "s", "protocol", "s"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1 :]}
    assert set(rows) == {"naive", "si", "pnn", "total"}
    assert rows["si"][1] == "-" and rows["si"][3] == "-"  # no CUDA graph on a CPU
    assert float(rows["si"][0]) > 0 and float(rows["si"][2]) > 0  # eager and fleet timed
    assert rows["pnn"][2] == "-"  # progressive networks: no fleet
    table = json.loads(out.read_text())
    assert table["methods"]["naive"]["best"] in ("eager", "fleet")
    assert table["wall_s"] > 0
