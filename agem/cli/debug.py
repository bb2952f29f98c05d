"""Whether the user asked for tracebacks instead of one-line errors."""

from __future__ import annotations

import argparse
import os

DEBUG_VARIABLE = "AGEM_DEBUG"


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    """True when `--debug` was given or AGEM_DEBUG is set to a true value."""
    if args is not None and getattr(args, "debug", False):
        return True
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")
