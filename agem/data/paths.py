"""Where datasets live: `root=` argument, else `$AGEM_DATA`, else `~/.cache/agem`."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "AGEM_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: `root` if given, else `$AGEM_DATA`, else `~/.cache/agem`.

    The directory is not created here (only a download creates it).
    """
    if root is not None:
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise TypeError(f"root must be a path or None, got {root!r}")
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "agem"
