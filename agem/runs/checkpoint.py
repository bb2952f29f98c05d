"""The checkpoint of a run: everything needed to continue it after experience k.

`checkpoint.pt` (written atomically by `RunFolder`, loaded with `weights_only=True`)
holds plain data and tensors only:

- "format", "config" (the run's settings), "experiences_done", "elapsed_seconds";
- "strategy": `strategy.state_dict()` — model, optimizer, clock, the strategy's
  shuffling generator and the global torch RNG, every plugin's state (the A-GEM memory
  and its generators, the evaluator's accuracy matrix, b_j, LCA curves, statistics);
- "rng": the other global generators (Python's `random`, numpy's, CUDA's);
- "logs": the bytes of metrics.csv and of each TensorBoard event file at that point,
  so that a resumed run rewrites them as they were and appends from there.

`checkpoint.sha256` (JSON) records the SHA-256 of the checkpoint: `read` hashes the
bytes it is about to load and refuses them unless they match, so a corrupted checkpoint
is never loaded. The record is written (atomically, and made durable) *before* the
checkpoint it describes, and lists the digest of the new checkpoint and of the one it
replaces: a process killed between the two renames leaves the previous checkpoint, which
still matches, so a kill never makes a good checkpoint unusable, and a file never loads
with a digest that is not its own.

`check` refuses a checkpoint that does not fit the config or the strategy before
`restore` changes anything.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from agem.bounded import load_json, read_bytes
from agem.core.template import BaseTemplate
from agem.runs.config import RunConfig
from agem.runs.folder import RunFolder, RunFolderError

NAME = "checkpoint.pt"
DIGEST = "checkpoint.sha256"
FORMAT = 1
_LARGEST = 2**40  # bytes: a bound for `read_bytes`, far above any checkpoint
_UNREADABLE = (
    OSError,
    RuntimeError,
    pickle.UnpicklingError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
)


def _global_rng(device: torch.device) -> dict[str, Any]:
    """Python's, numpy's and CUDA's global generator states. numpy's is None when this
    process never imported `numpy.random`: nothing has drawn from it, and importing it
    only to read its state would cost every run about 0.15 s."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"python": (version, tuple(internal), gauss), "numpy": None}
    if "numpy.random" in sys.modules:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_global_rng(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    if n is not None:
        keys = n["keys"].numpy().astype(np.uint32)
        np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _as_tensor(data: bytes) -> Tensor:
    if not data:
        return torch.zeros(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _compact(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """`tensors` with each view into a larger storage copied out, so that `torch.save`
    writes only its elements (a fleet member's parameters are rows of the fleet's)."""
    return {
        k: v.clone() if v.untyped_storage().nbytes() > v.numel() * v.element_size() else v
        for k, v in tensors.items()
    }


def capture(
    strategy: BaseTemplate,
    *,
    config: RunConfig,
    experiences_done: int,
    elapsed_seconds: float,
    checkpoint_seconds: float,
    logs: dict[str, bytes],
) -> dict[str, Any]:
    """The checkpoint of `strategy` after `experiences_done` experiences."""
    state = strategy.state_dict()
    state["model"] = _compact(state["model"])
    return {
        "format": FORMAT,
        "config": config.to_dict(),
        "experiences_done": experiences_done,
        "elapsed_seconds": elapsed_seconds,
        "checkpoint_seconds": checkpoint_seconds,
        "strategy": state,
        "rng": _global_rng(strategy.device),
        "logs": {name: _as_tensor(data) for name, data in logs.items()},
    }


def write(folder: RunFolder, state: dict[str, Any], *, previous: str | None) -> str:
    """Write `state` as the folder's checkpoint, atomically and durably; return its
    SHA-256 (hex). `previous` is the digest of the checkpoint now in the folder (None
    when it has none).

    The digest record goes first (listing the new digest and `previous`), then the
    checkpoint; see the module docstring. Serialised in memory first, so that an error
    of the disk (full, read-only) reaches the caller as the `OSError` it is, not wrapped
    by torch's zip writer.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    digest = hashlib.sha256(data).hexdigest()
    digests = [digest, *([previous] if previous and previous != digest else [])]
    folder.write_json(DIGEST, {"format": FORMAT, "sha256": digests})
    folder.sync()
    folder.write_bytes(NAME, data)
    folder.sync()
    return digest


def _recorded_digests(folder: RunFolder) -> list[str]:
    path = folder.path / DIGEST
    try:
        record = load_json(path)
    except FileNotFoundError:
        raise RunFolderError(
            f"{folder.path / NAME} has no integrity record ({DIGEST} is missing), so it "
            "cannot be verified; remove it to start the run over"
        ) from None
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{path} is unreadable ({err}); cannot verify {NAME}") from None
    digests = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise RunFolderError(f"{path} is malformed; cannot verify {folder.path / NAME}")
    return digests


def read(folder: RunFolder) -> tuple[dict[str, Any], str] | None:
    """(the folder's checkpoint, its SHA-256), or None if it has none.

    The bytes are verified against the digest record before anything is loaded
    (`RunFolderError` naming the checkpoint on a mismatch), then loaded from those very
    bytes with `weights_only=True`.
    """
    path = folder.path / NAME
    if not path.exists():
        return None
    try:
        data = read_bytes(path, limit=_LARGEST)
    except (OSError, ValueError) as err:
        raise RunFolderError(f"{path} is not a readable checkpoint ({err})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _recorded_digests(folder):
        raise RunFolderError(
            f"{path} fails its integrity check (its SHA-256 differs from the one recorded "
            f"in {DIGEST}): the file is corrupt and was not loaded; remove it to start the "
            "run over"
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except _UNREADABLE as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunFolderError(f"{path} is not a readable checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunFolderError(f"{path} is not an agem checkpoint of format {FORMAT}")
    return state, digest


def check(state: dict[str, Any], config: RunConfig, strategy: BaseTemplate) -> None:
    """Raise `RunFolderError` if `state` is not a checkpoint of `config` that fits
    `strategy`; nothing is changed."""
    try:
        saved = RunConfig.from_dict(state["config"])
    except (KeyError, ValueError) as err:
        raise RunFolderError(f"the checkpoint's config is unreadable ({err})") from None
    differ = config.same_run(saved)
    if differ:
        raise RunFolderError(
            f"the checkpoint belongs to another configuration (it differs in {', '.join(differ)})"
        )
    done = state.get("experiences_done")
    if not isinstance(done, int) or not 0 <= done <= (config.n_experiences or 0):
        raise RunFolderError(f"the checkpoint's experience count {done!r} is out of range")
    logs = state.get("logs")
    if not isinstance(logs, dict) or not all(isinstance(v, Tensor) for v in logs.values()):
        raise RunFolderError("the checkpoint's log files are malformed")
    if not all(Path(name).name == name and not name.startswith(".") for name in logs):
        raise RunFolderError("the checkpoint names log files outside the run folder")
    rng = state.get("rng")
    if not isinstance(rng, dict) or "python" not in rng or "numpy" not in rng:
        raise RunFolderError("the checkpoint's RNG states are malformed")
    try:
        strategy.check_state_dict(state["strategy"])
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        own = config.own_code()
        hint = f" (has the code of {', '.join(own)} changed since?)" if own else ""
        raise RunFolderError(f"the checkpoint does not fit this run: {err}{hint}") from None


def restore(state: dict[str, Any], strategy: BaseTemplate) -> None:
    """Load a checked checkpoint into `strategy` and the global generators."""
    strategy.load_state_dict(state["strategy"])
    _set_global_rng(state["rng"], strategy.device)


def log_bytes(state: dict[str, Any]) -> dict[str, bytes]:
    """The log files saved in the checkpoint: name -> bytes."""
    return {name: bytes(t.numpy().tobytes()) for name, t in state["logs"].items()}
