"""Once the last experience is trained and evaluated, SIGTERM/SIGINT no longer change a
run's status: a signal during the last checkpoint, the plots or the final results.json
leaves a `complete` run (exit 0). Real processes and signals; each is stopped inside
that very write by the test pause between a file's fsync and its rename."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers.runs import results, start, wait_for

ONE = ["--n-experiences", "1", "--hidden-sizes", "8", "--threads", "1", "--lca-beta", "2"]
PLOTS = ("accuracy_matrix.png", "accuracy_over_time.png", "lca.png")


def _pending(out: Path, name: str) -> bool:
    return bool(list(out.glob(f".{name}.*.tmp")))


def _signal_while_writing(out: Path, name: str, ready: object, signum: int) -> tuple[int, str]:
    proc = start("run", *ONE, "--out", str(out), AGEM_TEST_PAUSE_BEFORE_RENAME=f"{name}:2")
    try:
        wait_for(ready, timeout=120)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_final_results_write_keeps_the_run_complete(
    tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "run"

    def final_write() -> bool:  # the plots are written just before the final results
        return all((out / p).exists() for p in PLOTS) and _pending(out, "results.json")

    code, err = _signal_while_writing(out, "results.json", final_write, signum)
    assert code == 0 and "Traceback" not in err, err
    data = results(out)
    assert data["status"] == "complete" and data["A_T"] is not None


@pytest.mark.slow
def test_sigterm_during_a_plot_keeps_the_run_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, err = _signal_while_writing(
        out, "accuracy_matrix.png", lambda: _pending(out, "accuracy_matrix.png"), signal.SIGTERM
    )
    assert code == 0 and "Traceback" not in err, err
    assert results(out)["status"] == "complete"
    assert all((out / p).stat().st_size > 1000 for p in PLOTS)


@pytest.mark.slow
def test_sigterm_during_the_last_checkpoint_keeps_the_run_complete(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, err = _signal_while_writing(
        out, "checkpoint.pt", lambda: _pending(out, "checkpoint.pt"), signal.SIGTERM
    )
    assert code == 0 and "Traceback" not in err, err
    assert results(out)["status"] == "complete"
    assert list(out.glob(".*.tmp")) == []


def test_a_signal_swallowed_by_the_code_it_interrupted_still_interrupts() -> None:
    from agem.runs.lifecycle import RunInterrupted, Signals

    with Signals() as signals:
        try:  # a library's broad handler, around code that a SIGTERM lands in
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except Exception:
            pass
        with pytest.raises(RunInterrupted) as stopped:
            with signals.critical():  # the checkpoint after it is still written...
                pass
        assert stopped.value.signum == signal.SIGTERM  # ...and the run then stops
        signals.raise_pending()  # reported once
