import numpy as np
import pytest

from selfmix_core.config import SelectionConfig
from selfmix_core.selection import normalise_losses, select


def two_peaks(rng, n_clean=400, n_noisy=100):
    clean = rng.normal(0.2, 0.05, n_clean).clip(0)
    noisy = rng.normal(2.0, 0.3, n_noisy)
    return np.concatenate([clean, noisy]), np.r_[np.zeros(n_clean, bool), np.ones(n_noisy, bool)]


def test_gmm_separates_two_peaks():
    rng = np.random.default_rng(0)
    loss, noisy = two_peaks(rng)
    labels = rng.integers(0, 3, loss.size)
    sel = select(loss, labels, 3, SelectionConfig(), np.random.default_rng(1))
    assert sel.gmm is not None and sel.gmm.converged
    assert sel.gmm.separation > 4
    assert ((sel.clean_prob < 0.5) == noisy).mean() > 0.98
    clean_c = sel.gmm.clean_component
    assert sel.gmm.means[clean_c] < sel.gmm.means[1 - clean_c]
    assert not sel.warnings


def test_weak_split_warns():
    rng = np.random.default_rng(0)
    loss = rng.normal(1.0, 0.3, 500)
    sel = select(loss, rng.integers(0, 2, 500), 2, SelectionConfig(), np.random.default_rng(0))
    assert any("weak split" in w for w in sel.warnings)


def test_constant_losses_everything_clean():
    sel = select(np.ones(10), np.arange(10) % 2, 2, SelectionConfig(), np.random.default_rng(0))
    assert sel.gmm is None and sel.is_clean.all() and sel.warnings


def test_class_regularised_loss_hand_values():
    loss = np.array([1.0, 3.0, 10.0, 14.0])
    labels = np.array([0, 0, 1, 1])
    out = normalise_losses(loss, labels, 2, class_reg=True)
    assert np.allclose(out, [-1, 1, -1, 1])  # means 2 and 12, stds 1 and 2
    var = normalise_losses(loss, labels, 2, class_reg=True, use_variance=True)
    assert np.allclose(var, [-1, 1, -0.5, 0.5])  # variances 1 and 4
    mm = normalise_losses(loss, labels, 2)
    assert np.allclose(mm, (loss - 1) / 13)


def test_class_reg_finds_noise_in_a_low_loss_class():
    rng = np.random.default_rng(0)
    # class 0 has tiny losses (noisy ones at 0.5), class 1 large ones (clean at 2).
    c0_clean, c0_noisy = rng.normal(0.05, 0.01, 300), rng.normal(0.5, 0.05, 60)
    c1_clean, c1_noisy = rng.normal(2.0, 0.1, 300), rng.normal(4.0, 0.2, 60)
    loss = np.concatenate([c0_clean, c0_noisy, c1_clean, c1_noisy])
    labels = np.r_[np.zeros(360, int), np.ones(360, int)]
    noisy = np.r_[np.zeros(300, bool), np.ones(60, bool), np.zeros(300, bool), np.ones(60, bool)]
    plain = select(loss, labels, 2, SelectionConfig(), np.random.default_rng(0))
    reg = select(loss, labels, 2, SelectionConfig(class_reg=True), np.random.default_rng(0))
    acc_plain = ((plain.clean_prob < 0.5) == noisy).mean()
    acc_reg = ((reg.clean_prob < 0.5) == noisy).mean()
    assert acc_reg > 0.95 > acc_plain


def test_bad_input_raises_value_error():
    with pytest.raises(ValueError, match="NaN"):
        normalise_losses(np.array([1.0, np.nan]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="same length"):
        normalise_losses(np.array([1.0, 2.0]), np.array([0]), 2)
    with pytest.raises(ValueError, match="empty"):
        normalise_losses(np.array([]), np.array([], int), 2)
