"""Benchmarks: streams of experiences, built from user data or standard datasets."""

from agem.benchmarks.cifar import split_cifar10, split_cifar100
from agem.benchmarks.digits import permuted_digits, split_digits
from agem.benchmarks.mnist import (
    permuted_fashion_mnist,
    permuted_mnist,
    split_fashion_mnist,
    split_mnist,
)
from agem.benchmarks.protocols import reserve_validation
from agem.benchmarks.rotated import rotated_mnist
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
    "permuted_fashion_mnist",
    "permuted_mnist",
    "reserve_validation",
    "rotated_mnist",
    "split_cifar10",
    "split_cifar100",
    "split_digits",
    "split_fashion_mnist",
    "split_mnist",
]
