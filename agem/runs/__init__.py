"""One run folder: its settings, lifecycle, checkpoints and execution."""
