"""Errors raised by the dataset readers and the download machinery."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file is corrupt, truncated, of the wrong kind, or failed its checksum."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not (or may not) be downloaded."""
