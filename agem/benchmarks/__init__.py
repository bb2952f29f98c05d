"""Benchmarks: streams of experiences, built from user data or standard datasets."""

from agem.benchmarks.digits import permuted_digits, split_digits
from agem.benchmarks.streams import (
    Benchmark,
    Experience,
    Stream,
    TensorDataset,
    from_datasets,
    from_tensors,
)

__all__ = [
    "Benchmark",
    "Experience",
    "Stream",
    "TensorDataset",
    "from_datasets",
    "from_tensors",
    "permuted_digits",
    "split_digits",
]
