"""selfmix_core.noise: exact realised rates, honest transition matrices, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from selfmix_core.data import dataset_from_frame
from selfmix_core.noise import NOISE_KINDS, inject_noise, noisy_dataset


def _labels(n: int = 503, k: int = 4, seed: int = 0) -> np.ndarray:
    # unbalanced classes, so per-class rounding matters
    return np.random.default_rng(seed).choice(k, size=n, p=[0.4, 0.3, 0.2, 0.1][:k])


def _blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two 2-D Gaussian blobs at x = -2 and x = +2: the boundary is near x = 0."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, 2)) + np.where(y[:, None] == 0, -2.0, 2.0) * np.array([1.0, 0.0])
    return x, y


def _run(kind: str, rate: float, seed: int = 1, y: np.ndarray | None = None, **kw):
    if y is None:
        y = _labels()
    if kind == "idn" and "features" not in kw:
        # features that make the classes separable, plus noise, one row per label
        rng = np.random.default_rng(99)
        kw["features"] = np.eye(4)[y] * 2 + rng.normal(size=(len(y), 4))
    return y, inject_noise(y, kind, rate, np.random.default_rng(seed), **kw)


# ---- exact counts and honest bookkeeping ---------------------------------------------


@pytest.mark.parametrize("kind", ["sym", "asym", "idn"])
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.37, 0.8])
def test_exact_realised_rate(kind, rate):
    y, r = _run(kind, rate)
    assert r.flipped.sum() == round(rate * len(y)) == r.n_flipped
    assert r.rate == pytest.approx(round(rate * len(y)) / len(y))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_flips_change_labels_and_bookkeeping_matches(kind):
    y, r = _run(kind, 0.3)
    assert r.noisy.dtype == np.int64 and r.noisy.shape == y.shape
    assert (r.noisy[r.flipped] != y[r.flipped]).all()
    assert (r.noisy[~r.flipped] == y[~r.flipped]).all()
    assert ((r.noisy >= 0) & (r.noisy < 4)).all()
    expected = np.zeros((4, 4), dtype=int)
    np.add.at(expected, (y, r.noisy), 1)
    assert (r.counts == expected).all()
    np.testing.assert_allclose(r.transition.sum(axis=1), 1.0)
    np.testing.assert_allclose(r.transition, expected / expected.sum(axis=1, keepdims=True))


def test_none_is_identity():
    y, r = _run("none", 0.0)
    assert (r.noisy == y).all() and not r.flipped.any() and r.rate == 0.0
    np.testing.assert_array_equal(r.transition, np.eye(4))


def test_absent_class_gets_identity_row():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    r = inject_noise(y, "sym", 0.5, np.random.default_rng(0), num_classes=3)
    np.testing.assert_array_equal(r.transition[2], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(r.transition.sum(axis=1), 1.0)


def test_sym_targets_every_other_class():
    y = np.zeros(3000, dtype=int)
    y[1500:] = 1
    r = inject_noise(y, "sym", 0.6, np.random.default_rng(0), num_classes=4)
    # class 0's flips go to 1, 2 and 3 about equally
    shares = r.counts[0, 1:] / r.counts[0, 1:].sum()
    assert np.all(np.abs(shares - 1 / 3) < 0.06)


def test_asym_goes_to_next_class_in_proportion():
    y, r = _run("asym", 0.3)
    assert (r.noisy[r.flipped] == (y[r.flipped] + 1) % 4).all()
    sizes = np.bincount(y, minlength=4)
    per_class = r.counts.sum(axis=1) - np.diag(r.counts)
    # largest remainder: each class within one of its exact share
    assert np.all(np.abs(per_class - 0.3 * len(y) * sizes / len(y)) < 1)


def test_user_transition_is_honoured():
    y = _labels()
    t = np.array(
        [
            [0.7, 0.3, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.1, 0.1, 0.8, 0.0],
            [0.0, 0.0, 0.5, 0.5],
        ]
    )
    r = inject_noise(y, "asym", None, np.random.default_rng(0), transition=t)
    sizes = np.bincount(y, minlength=4)
    assert (r.counts.sum(axis=1) == sizes).all()
    assert np.all(np.abs(r.counts - t * sizes[:, None]) < 1)  # round(T[i, j] * n_i), exact rows
    assert (r.counts[t == 0] == 0).all()


# ---- idn ------------------------------------------------------------------------


def test_idn_flips_cluster_near_the_boundary():
    x, y = _blobs()
    r = inject_noise(y, "idn", 0.2, np.random.default_rng(0), features=x)
    assert r.flipped.sum() == 80
    assert (r.noisy[r.flipped] == 1 - y[r.flipped]).all()
    distance = np.abs(x[:, 0])  # distance to the true boundary x = 0
    assert distance[r.flipped].mean() < 0.5 * distance[~r.flipped].mean()


def test_idn_flips_to_the_most_likely_other_class():
    # three blobs on a line: class 0 | 1 | 2; a flipped 0 can only become 1, never 2
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 150)
    x = np.c_[y * 4.0 + rng.normal(size=450), rng.normal(size=450)]
    r = inject_noise(y, "idn", 0.2, np.random.default_rng(1), features=sparse.csr_matrix(x))
    assert r.n_flipped == 90
    assert not ((y == 0) & (r.noisy == 2)).any() and not ((y == 2) & (r.noisy == 0)).any()
    assert (r.noisy[r.flipped] != y[r.flipped]).all()


# ---- determinism ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sym", "asym", "idn"])
def test_same_seed_same_noise_different_seed_different(kind):
    _, a = _run(kind, 0.3, seed=5)
    _, b = _run(kind, 0.3, seed=5)
    _, c = _run(kind, 0.3, seed=6)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    if kind != "idn":  # idn picks the same boundary samples unless ties or subsets differ
        assert (a.noisy != c.noisy).any()


def test_idn_different_seed_changes_the_classifier():
    x, y = _blobs(seed=3)
    a = inject_noise(y, "idn", 0.3, np.random.default_rng(0), features=x, clean_fraction=0.05)
    b = inject_noise(y, "idn", 0.3, np.random.default_rng(1), features=x, clean_fraction=0.05)
    assert (a.noisy != b.noisy).any()


# ---- noisy_dataset ------------------------------------------------------------------


def _text_dataset():
    words = {0: "goal match team score", 1: "stock market price bank", 2: "rocket space planet star"}
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    texts = [" ".join(rng.choice(words[c].split(), size=5)) + f" #{i}" for i, c in enumerate(y)]
    df = pd.DataFrame({"text": texts, "label": np.array(["sport", "money", "space"])[y]})
    return dataset_from_frame(df, source="toy.csv")


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noisy_dataset_keeps_originals_as_true_labels(kind):
    ds = _text_dataset()
    noisy, r = noisy_dataset(ds, kind, 0.25, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy.true_labels, ds.labels)
    np.testing.assert_array_equal(noisy.labels, r.noisy)
    assert (noisy.labels != ds.labels).sum() == (0 if kind == "none" else 30)
    assert noisy.texts == ds.texts and noisy.label_names == ds.label_names
    assert noisy.source.startswith("toy.csv + ") and ds.true_labels is None  # original untouched


# ---- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="sym", rate=1.0), r"rate must be in \[0, 1\)"),
        (dict(kind="sym", rate=-0.1), r"rate must be in \[0, 1\)"),
        (dict(kind="sym", rate="lots"), "rate must be a number"),
        (dict(kind="pair", rate=0.2), "kind must be one of"),
        (dict(kind="sym", rate=0.2, num_classes=1), "at least 2 classes"),
        (dict(kind="sym", rate=0.2, num_classes=2), r"outside"),
        (dict(kind="idn", rate=0.2), "idn noise needs features"),
        (dict(kind="idn", rate=0.2, features=np.zeros((3, 2))), r"features must have shape \(503, D\)"),
        (dict(kind="sym", rate=0.2, transition=np.eye(4)), "only used with kind='asym'"),
        (dict(kind="asym", rate=0.2, transition=np.ones((4, 4))), "must sum to 1"),
        (dict(kind="asym", rate=0.2, transition=np.eye(3)), r"shape \(4, 4\)"),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        inject_noise(_labels(), rng=np.random.default_rng(0), **kwargs)


def test_bad_labels_and_rng():
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        inject_noise(_labels(), "sym", 0.2, 0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        inject_noise(np.zeros((2, 2), dtype=int), "sym", 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"1 row \(1-based: 2\)"):
        inject_noise([0, -1, 1], "sym", 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="integer class ids"):
        inject_noise([0.5, 1.0], "sym", 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least two classes present"):
        inject_noise([0, 0, 0], "idn", 0.2, np.random.default_rng(0), num_classes=2, features=np.eye(3))
