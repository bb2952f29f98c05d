"""What a run needs from the machine, checked before anything is written: the device,
the thread count and the dataset folder; and the "environment" section of config.json."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from agem.benchmarks.registry import get
from agem.data import fetch, search_dirs
from agem.data.catalog import get_source
from agem.runs.config import RunConfig
from agem.version import __version__


def check_device(name: str) -> torch.device:
    """The torch device `name`, if this machine has it; else a one-line ValueError."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device: unknown device {name!r} (try cpu or cuda)") from None
    kind = device.type
    if kind == "cpu":
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s)")
        return device
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return device
        raise ValueError(f"--device {name}: Apple MPS is not available on this machine")
    if kind == "xpu":
        xpu = getattr(torch, "xpu", None)
        if xpu is not None and xpu.is_available():
            return device
        raise ValueError(f"--device {name}: Intel XPU is not available on this machine")
    raise ValueError(
        f"--device {name}: runs train on cpu, cuda, mps or xpu, not on {kind!r} devices"
    )


def resolve_data(config: RunConfig) -> tuple[Path | None, Path | None]:
    """(folder to pass to the benchmark builder, path actually read) for `config`'s dataset.

    Both are None for the embedded benchmarks; a benchmark of your own gets `--data-dir`
    as it is. A `--data-dir` is searched alone (never a system copy elsewhere); a dataset
    that is missing is a `DatasetNotFoundError` naming the files expected and the folders
    searched.
    """
    spec = get(config.benchmark)
    root = Path(config.data_dir).expanduser() if config.data_dir is not None else None
    if spec.dataset is None:  # a benchmark of your own reads --data-dir itself
        return root, None
    system = root is None
    found = fetch(spec.dataset, root=root, download=config.download, system_dirs=system)
    source = get_source(spec.dataset)
    for folder in search_dirs(spec.dataset, root, system_dirs=system):
        if source.find_in(folder) == found:
            return folder.resolve(), found.resolve()
    return found.resolve(), found.resolve()  # pragma: no cover - fetch found it in one of them


def environment(config: RunConfig, device: torch.device, data: Path | None) -> dict[str, Any]:
    """Versions, device, threads and the data actually read, for config.json."""
    described = str(device)
    if device.type == "cuda":
        described += f" ({torch.cuda.get_device_name(device)})"
    return {
        "agem": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": described,
        "threads": torch.get_num_threads(),
        "data_dir": str(data) if data is not None else None,
    }
