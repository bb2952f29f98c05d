"""Permuted / rotated / split protocols and held-out validation experiences, on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from agem.benchmarks.protocols import (
    PixelPermutation,
    ToFloat,
    class_order,
    permuted,
    pixel_stats,
    reserve_validation,
    split,
)
from agem.benchmarks.rotated import Rotation, gem_angles, rotated


def _data(n_train=60, n_test=30, classes=10, shape=(1, 6, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    x_tr = torch.randint(0, 256, (n_train, *shape), generator=g, dtype=torch.uint8)
    x_te = torch.randint(0, 256, (n_test, *shape), generator=g, dtype=torch.uint8)
    y_tr = torch.arange(n_train) % classes
    y_te = torch.arange(n_test) % classes
    return (x_tr, y_tr), (x_te, y_te)


def _inputs(exp):
    return exp.dataset.batch(slice(None))


# ---- permuted ----------------------------------------------------------------------


def test_permutations_differ_across_experiences_and_keep_every_pixel():
    train, test = _data()
    bm = permuted(train, test, 4, seed=3, name="p")
    raw = ToFloat()(train[0])
    seen = []
    for exp in bm.train_stream:
        x, y, t = _inputs(exp)
        assert x.dtype == torch.float32 and x.shape == (60, 36)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        # every pixel kept: each row is a rearrangement of the raw row
        torch.testing.assert_close(x.sort(dim=1).values, raw.sort(dim=1).values)
        assert torch.equal(y, train[1]) and torch.equal(t, torch.zeros(60, dtype=torch.long))
        perm = exp.dataset.transform.permutation
        assert sorted(perm.tolist()) == list(range(36))
        torch.testing.assert_close(x, raw[:, perm])
        seen.append(perm)
    assert all(not torch.equal(a, b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    # the first experience is permuted too (A-GEM)
    assert not torch.equal(seen[0], torch.arange(36))
    # train and test of one experience share the permutation
    for tr, te in zip(bm.train_stream, bm.test_stream):
        assert tr.dataset.transform is te.dataset.transform
        assert te.classes_in_this_experience == tuple(range(10))


def test_permutations_fixed_by_seed():
    train, test = _data()
    a = permuted(train, test, 3, seed=7, name="p")
    b = permuted(train, test, 3, seed=7, name="p")
    c = permuted(train, test, 3, seed=8, name="p")
    assert a.info["permutations"] == b.info["permutations"]
    assert a.info["permutations"] != c.info["permutations"]
    for ea, eb in zip(a.test_stream, b.test_stream):
        assert torch.equal(_inputs(ea)[0], _inputs(eb)[0])


def test_experiences_share_one_stored_copy():
    train, test = _data()
    bm = permuted(train, test, 5, seed=0, name="p")
    ptrs = {exp.dataset.x.data_ptr() for exp in bm.train_stream}
    assert ptrs == {train[0].data_ptr()}
    assert {exp.dataset.x.dtype for exp in bm.test_stream} == {torch.uint8}


def test_train_subset_same_samples_every_experience_fixed_by_seed():
    train, test = _data()
    a = permuted(train, test, 3, seed=1, name="p", train_subset=10)
    b = permuted(train, test, 3, seed=1, name="p", train_subset=10)
    assert {len(e) for e in a.train_stream} == {10}
    assert len({e.dataset.x.data_ptr() for e in a.train_stream}) == 1
    assert torch.equal(a.train_stream[0].dataset.y, b.train_stream[0].dataset.y)
    assert len(a.test_stream[0]) == 30
    with pytest.raises(ValueError, match="train_subset"):
        permuted(train, test, 2, seed=0, name="p", train_subset=0)


def test_permuted_unflattened_and_task_labels():
    train, test = _data()
    bm = permuted(train, test, 2, seed=0, name="p", flatten=False, task_labels=True)
    x, _, t = _inputs(bm.train_stream[1])
    assert x.shape == (60, 1, 6, 6)
    assert bm.task_labels and set(t.tolist()) == {1} and bm.train_stream[1].task_label == 1
    assert bm.train_stream[1].classes_in_this_experience == tuple(range(10))


def test_standardised_inputs_have_zero_mean_unit_std():
    train, test = _data(n_train=500)
    bm = permuted(train, test, 2, seed=0, name="p", standardize=True)
    x = _inputs(bm.train_stream[0])[0]
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std(unbiased=False)) - 1.0) < 1e-4


def test_pixel_stats_exact_and_per_channel():
    x = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8)
    mean, std = pixel_stats(x)
    assert mean.shape == (3, 1, 1)
    ref = x.double().div(255).transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(mean.flatten().double(), ref.mean(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        std.flatten().double(), ref.std(1, unbiased=False), atol=1e-6, rtol=0
    )
    m1, s1 = pixel_stats(x[:, 0], scale=16.0)
    v = x[:, 0].double()
    assert m1.shape == () and math.isclose(float(m1), v.mean().item() / 16, rel_tol=1e-6)
    assert math.isclose(float(s1), v.std(unbiased=False).item() / 16, rel_tol=1e-5)


def test_to_float_validates_and_leaves_float_inputs_unscaled():
    with pytest.raises(ValueError, match="std must be positive"):
        ToFloat(std=0.0)
    with pytest.raises(ValueError, match="scale"):
        ToFloat(scale=0)
    x = torch.rand(2, 3, 3)
    assert torch.equal(ToFloat(flatten=False)(x), x)
    p = PixelPermutation(torch.tensor([1, 0]), scale=2.0)
    assert torch.equal(p(torch.tensor([[2, 0]], dtype=torch.uint8)), torch.tensor([[0.0, 1.0]]))


# ---- rotated -----------------------------------------------------------------------


def test_rotation_by_90_degrees_is_exact_counter_clockwise():
    img = torch.zeros(1, 5, 5, dtype=torch.uint8)
    img[0, 2, 4] = 255  # a dot right of centre
    out = Rotation(90, flatten=False)(img)
    expect = torch.zeros(1, 5, 5)
    expect[0, 0, 2] = 1.0  # counter-clockwise: right goes to top
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=0)
    four = img.float() / 255
    for _ in range(4):
        four = Rotation(90, flatten=False)(four)
    torch.testing.assert_close(four, img.float() / 255, atol=1e-5, rtol=0)


def test_rotation_by_zero_is_identity_and_shapes():
    x = torch.randint(0, 256, (3, 1, 7, 7), dtype=torch.uint8)
    torch.testing.assert_close(Rotation(0, flatten=False)(x), x.float() / 255, atol=1e-6, rtol=0)
    assert Rotation(33)(x).shape == (3, 49)
    assert Rotation(33, flatten=False)(x[:, 0]).shape == (3, 7, 7)
    with pytest.raises(ValueError, match="batch"):
        Rotation(10)(torch.zeros(3, 49))


def test_gem_angles_one_per_slice_fixed_by_seed():
    a = gem_angles(20, seed=0)
    assert a == gem_angles(20, seed=0) and a != gem_angles(20, seed=1)
    for i, angle in enumerate(a):
        assert 9 * i <= angle < 9 * (i + 1)


def test_rotated_protocol():
    train, test = _data()
    bm = rotated(train, test, 3, seed=0, name="r")
    assert [round(a, 6) for a in bm.info["angles"]] == [round(a, 6) for a in gem_angles(3, seed=0)]
    assert {exp.dataset.x.data_ptr() for exp in bm.train_stream} == {train[0].data_ptr()}
    xs = [_inputs(e)[0] for e in bm.test_stream]
    assert all(x.shape == (30, 36) for x in xs)
    assert not torch.allclose(xs[0], xs[2])
    fixed = rotated(train, test, 2, seed=0, name="r", angles=[0, 180])
    assert fixed.info["angles"] == [0.0, 180.0]
    with pytest.raises(ValueError, match="angles has 1 entries"):
        rotated(train, test, 2, seed=0, name="r", angles=[5])


# ---- split -------------------------------------------------------------------------


@pytest.mark.parametrize("n_exp,classes", [(5, 10), (2, 10), (4, 20)])
def test_split_partitions_the_classes(n_exp, classes):
    train, test = _data(n_train=200, n_test=100, classes=classes)
    bm = split(train, test, n_exp, seed=0, name="s")
    groups = [set(e.classes_in_this_experience) for e in bm.train_stream]
    assert all(len(g) == classes // n_exp for g in groups)
    assert set().union(*groups) == set(range(classes))
    assert sum(len(g) for g in groups) == classes  # no overlap
    for tr, te in zip(bm.train_stream, bm.test_stream):
        assert set(tr.dataset.y.tolist()) == set(tr.classes_in_this_experience)
        assert set(te.dataset.y.tolist()) == set(tr.classes_in_this_experience)
    assert sum(len(e) for e in bm.train_stream) == 200
    assert sum(len(e) for e in bm.test_stream) == 100


def test_split_task_label_remapping_is_consistent_between_train_and_test():
    train, test = _data(n_train=100, n_test=50)
    bm = split(train, test, 5, seed=4, name="s", task_labels=True)
    assert bm.task_labels
    for i, (tr, te) in enumerate(zip(bm.train_stream, bm.test_stream)):
        original = bm.info["classes_per_experience"][i]
        assert tr.task_label == te.task_label == i
        assert tr.classes_in_this_experience == te.classes_in_this_experience == (0, 1)
        for exp, (x, y) in ((tr, train), (te, test)):
            idx = torch.nonzero(torch.isin(y, torch.tensor(original))).flatten()
            expected = torch.tensor([original.index(int(c)) for c in y[idx]])
            assert torch.equal(exp.dataset.y, expected)
            assert torch.equal(exp.dataset.x, x[idx])
            assert set(exp.dataset.t.tolist()) == {i}


def test_split_same_seed_same_order_other_seed_other_order():
    train, test = _data()
    a = split(train, test, 5, seed=1, name="s")
    b = split(train, test, 5, seed=1, name="s")
    c = split(train, test, 5, seed=2, name="s")
    assert a.info["class_order"] == b.info["class_order"] != c.info["class_order"]
    assert class_order(range(10), None) == list(range(10))
    fixed = split(train, test, 5, seed=9, name="s", fixed_class_order=list(range(10)))
    assert fixed.info["classes_per_experience"][0] == [0, 1]


def test_split_unflattened_and_standardised():
    train, test = _data(shape=(3, 4, 4))
    bm = split(train, test, 2, seed=0, name="s", flatten=False, standardize=True)
    x = _inputs(bm.train_stream[0])[0]
    assert x.shape[1:] == (3, 4, 4) and x.dtype == torch.float32
    mean, _ = pixel_stats(train[0])
    assert mean.shape == (3, 1, 1)


def test_split_bad_counts():
    train, test = _data()
    with pytest.raises(ValueError, match="cannot be split evenly"):
        split(train, test, 3, seed=0, name="s")
    with pytest.raises(ValueError, match="at most 10"):
        split(train, test, 20, seed=0, name="s")
    with pytest.raises(ValueError, match="n_experiences"):
        permuted(train, test, 0, seed=0, name="p")


# ---- validation experiences ----------------------------------------------------------


def test_validation_experiences_split_off_and_renumbered():
    train, test = _data(n_train=100, n_test=50)
    full = split(train, test, 5, seed=0, name="s", task_labels=True)
    bm = split(train, test, 5, seed=0, name="s", task_labels=True, validation_experiences=2)
    val = bm.info["validation"]
    assert bm.n_experiences == 3 and val.n_experiences == 2
    assert bm.info["validation_experiences"] == 2
    assert [e.current_experience for e in bm.train_stream] == [0, 1, 2]
    assert [e.task_label for e in bm.test_stream] == [0, 1, 2]
    assert [e.current_experience for e in val.test_stream] == [0, 1]
    for exp, ref in zip(bm.train_stream, full.train_stream[2:]):
        assert torch.equal(exp.dataset.y, ref.dataset.y)
        assert set(exp.dataset.t.tolist()) == {exp.task_label}
    assert bm.info["classes_per_experience"] == full.info["classes_per_experience"][2:]
    assert val.info["classes_per_experience"] == full.info["classes_per_experience"][:2]
    assert bm.n_classes == val.n_classes == 10


def test_validation_on_permuted_keeps_the_permutations():
    train, test = _data()
    full = permuted(train, test, 5, seed=0, name="p")
    bm = permuted(train, test, 5, seed=0, name="p", validation_experiences=3)
    assert bm.info["permutations"] == full.info["permutations"][3:]
    assert bm.info["validation"].info["permutations"] == full.info["permutations"][:3]
    torch.testing.assert_close(_inputs(bm.test_stream[0])[0], _inputs(full.test_stream[3])[0])
    assert reserve_validation(full, 0) is full


@pytest.mark.parametrize("k", [-1, 5, 2.0, True])
def test_validation_experiences_must_leave_some(k):
    train, test = _data()
    with pytest.raises(ValueError, match="validation_experiences"):
        permuted(train, test, 5, seed=0, name="p", validation_experiences=k)
