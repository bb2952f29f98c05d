"""MNIST mirrors: the host that refuses downloads (HTTP 403) is tried last, and every
mirror is checked against the same published MD5 sums."""

from __future__ import annotations

from agem.data.catalog import DATASETS, MNIST_MIRRORS

PUBLISHED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def test_mnist_tries_pytorchs_copy_first_and_the_original_site_last() -> None:
    mirrors = DATASETS["mnist"].mirrors
    assert mirrors == MNIST_MIRRORS
    assert mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert mirrors[-1] == "http://yann.lecun.com/exdb/mnist/"
    assert all(m.endswith("/") for m in mirrors)


def test_mnist_checksums_are_the_published_ones() -> None:
    assert {f.name: f.md5 for f in DATASETS["mnist"].files} == PUBLISHED_MD5
