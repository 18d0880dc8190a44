import math

import numpy as np
import pytest
import torch

from selfmix_core.losses import (
    embmix,
    per_sample_ce,
    pseudo_label_loss,
    rdrop_kl,
    sample_mix_lambda,
    sharpen,
    soft_cross_entropy,
)


def test_sharpen_matches_hand_computation():
    p = torch.tensor([[0.6, 0.3, 0.1]])
    out = sharpen(p, 0.5)  # p^2 / sum p^2 = [0.36, 0.09, 0.01] / 0.46
    expected = torch.tensor([[0.36, 0.09, 0.01]]) / 0.46
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(sharpen(p, 1.0), p, atol=1e-6)


def test_soft_cross_entropy_hand_values():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax: [.5,.5], [.75,.25]
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    row1 = -math.log(0.5)
    row2 = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25))
    assert soft_cross_entropy(logits, targets).item() == pytest.approx((row1 + row2) / 2, rel=1e-6)


def test_pseudo_label_loss_uses_argmax_and_reference_min_class():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p = [.75, .25]
    assert pseudo_label_loss(logits).item() == pytest.approx(-math.log(0.75), rel=1e-6)
    assert pseudo_label_loss(logits, min_class=True).item() == pytest.approx(-math.log(0.25), rel=1e-6)
    assert pseudo_label_loss(torch.zeros(0, 2)).item() == 0.0


def test_rdrop_symmetric_kl_mean_and_sum():
    l1 = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # [.75,.25], [.5,.5]
    l2 = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # [.5,.5]
    p, q = np.array([0.75, 0.25]), np.array([0.5, 0.5])
    kl_pq = float((p * np.log(p / q)).sum())
    kl_qp = float((q * np.log(q / p)).sum())
    sym = 0.5 * (kl_pq + kl_qp)
    # The paper's Eq. 16 (and the default) sums over U; the second row contributes 0.
    assert rdrop_kl(l1, l2).item() == pytest.approx(sym, rel=1e-5)
    assert rdrop_kl(l1, l2, reduction="mean").item() == pytest.approx(sym / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        rdrop_kl(l1, l2, reduction="max")
    assert rdrop_kl(l1, l1).item() == pytest.approx(0.0, abs=1e-7)
    assert rdrop_kl(l2, l1).item() == pytest.approx(rdrop_kl(l1, l2).item(), rel=1e-6)


def test_embmix_hand_values():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m_emb, m_tgt = embmix(emb, tgt, 0.7, torch.tensor([1, 0]))
    assert torch.allclose(m_emb, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    assert torch.allclose(m_tgt, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))


def test_mix_lambda_is_at_least_half_and_seeded():
    rng = np.random.default_rng(0)
    lams = [sample_mix_lambda(0.75, rng) for _ in range(200)]
    assert min(lams) >= 0.5 and max(lams) <= 1.0
    assert sample_mix_lambda(0.75, np.random.default_rng(3)) == sample_mix_lambda(0.75, np.random.default_rng(3))


def test_per_sample_ce_and_reference_double_softmax():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0])
    ce = per_sample_ce(logits, y)
    p0 = math.exp(2) / (math.exp(2) + 1)
    assert ce[0].item() == pytest.approx(-math.log(p0), rel=1e-6)
    assert ce[1].item() == pytest.approx(-math.log(1 - p0), rel=1e-6)
    ref = per_sample_ce(logits, y, softmax_first=True)
    # softmax of probabilities [p0, 1-p0]: the gap between the two samples shrinks
    assert (ref[1] - ref[0]).item() < (ce[1] - ce[0]).item()
    q = math.exp(p0) / (math.exp(p0) + math.exp(1 - p0))
    assert ref[0].item() == pytest.approx(-math.log(q), rel=1e-6)
