"""A Ray address that refuses or never answers is one line and exit status 2 within the
`--ray-timeout`, with nothing written to --out and none of Ray's own output shown."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.runs import agem, one_line_error

pytest.importorskip("ray")

SWEEP_TOML = """
[base]
benchmark = "permuted_digits"
n_experiences = 1
hidden_sizes = [8]
[grid]
seed = [0]
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SWEEP_TOML)
    return path


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says anything (not a Ray cluster)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_a_refused_address_is_one_line_at_once(tmp_path: Path, spec: Path) -> None:
    out = tmp_path / "out"
    began = time.monotonic()
    proc = agem(
        "sweep", str(spec), "--out", str(out), "--engine", "ray", "--ray-address", "127.0.0.1:1"
    )
    assert time.monotonic() - began < 60
    line = one_line_error(proc)
    assert "127.0.0.1:1" in line and "refused" in line.lower()
    assert not out.exists() and proc.stdout == ""


@pytest.mark.slow
def test_an_address_that_never_answers_gives_up_after_the_timeout(
    tmp_path: Path, spec: Path, silent_port: int
) -> None:
    out = tmp_path / "out"
    began = time.monotonic()
    proc = agem(
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--engine",
        "ray",
        "--ray-address",
        f"127.0.0.1:{silent_port}",
        "--ray-timeout",
        "3",
    )
    assert time.monotonic() - began < 60
    line = one_line_error(proc)  # Ray's own warnings stay out of the terminal
    assert f"127.0.0.1:{silent_port}" in line and "3 s" in line and "--ray-timeout" in line
    assert not out.exists()


def test_ray_options_need_the_ray_engine(tmp_path: Path, spec: Path) -> None:
    proc = agem("sweep", str(spec), "--out", str(tmp_path / "o"), "--ray-timeout", "3")
    assert "--engine ray" in one_line_error(proc)
