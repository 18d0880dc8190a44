"""SelfMix's loss terms as pure tensor functions (no model, no state).

Shapes: B = batch, K = classes, H = embedding size. Probabilities are softmax outputs;
every loss takes LOGITS unless its name says otherwise, and uses log_softmax so it
stays finite (the reference code applied softmax before its cross-entropy, i.e.
twice; see ReferenceDeviations.softmax_before_ce, which only affects selection).

    L = L_mix + lambda_p * L_P + lambda_r * L_R                   (paper Eq. 17)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, K) probabilities -> (B, K) p^(1/T) / sum p^(1/T). T < 1 sharpens.

    Computed in log space so that tiny probabilities do not underflow to 0/0.
    """
    logp = torch.log(probs.clamp_min(1e-12)) / temperature
    return torch.softmax(logp, dim=-1)


def sample_mix_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); lambda' = max(lambda, 1 - lambda) (paper Eq. 7-8).

    Taking the max keeps each mixed sample closer to its first source, so the mixed
    target is dominated by the sample whose embedding dominates.
    """
    lam = float(rng.beta(alpha, alpha))
    return max(lam, 1.0 - lam)


def embmix(
    emb: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbMix (paper Eq. 10-11): mix each row with row perm[i].

    emb: (B, H) pooled embeddings; targets: (B, K) one-hot or soft targets;
    lam: lambda' in [0.5, 1]; perm: (B,) permutation of 0..B-1.
    Returns mixed embeddings (B, H) and mixed targets (B, K).
    """
    mixed_emb = lam * emb + (1.0 - lam) * emb[perm]
    mixed_tgt = lam * targets + (1.0 - lam) * targets[perm]
    return mixed_emb, mixed_tgt


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_mix (paper Eq. 13): mean over the batch of -sum_k t_k log softmax(z)_k.

    logits: (B, K); targets: (B, K) rows summing to 1. Returns a scalar.
    """
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def pseudo_label_loss(logits: torch.Tensor, min_class: bool = False) -> torch.Tensor:
    """L_P (paper Eq. 14-15): -mean_i log p_i[argmax p_i] over the unlabeled batch.

    Penalises unlabeled samples whose predicted class has a low probability (pushes the
    decision boundary into low-density regions). The target index carries no gradient.
    min_class=True reproduces the reference code, which used the LEAST likely class.
    logits: (B, K). Returns a scalar (0 for an empty batch).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    logp = F.log_softmax(logits, dim=-1)
    idx = (logp.argmin(-1) if min_class else logp.argmax(-1)).detach()
    return -logp.gather(1, idx.unsqueeze(1)).mean()


def rdrop_kl(logits1: torch.Tensor, logits2: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """L_R (paper Eq. 16): symmetric KL between two dropout passes of the same batch.

    0.5 * (KL(p1 || p2) + KL(p2 || p1)) per sample, summed over classes, then summed over
    the unlabeled batch ("sum", the paper's Eq. 16 and the authors' code; with 16
    unlabeled samples per step its scale is 16x the mean's) or averaged ("mean",
    FastChoices.kl_mean, an earlier choice of this engine).
    logits1, logits2: (B, K). Returns a scalar (0 for an empty batch).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if logits1.shape[0] == 0:
        return logits1.sum() * 0.0
    lp1 = F.log_softmax(logits1, dim=-1)
    lp2 = F.log_softmax(logits2, dim=-1)
    kl12 = (lp1.exp() * (lp1 - lp2)).sum(-1)
    kl21 = (lp2.exp() * (lp2 - lp1)).sum(-1)
    per_sample = 0.5 * (kl12 + kl21)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor, softmax_first: bool = False) -> torch.Tensor:
    """(B, K) logits, (B,) int labels -> (B,) cross-entropy, the selection statistic.

    softmax_first=True reproduces the reference code: cross-entropy applied to
    softmax(logits), which squashes every loss into [log K - 1 + ..., log K] and
    compresses the gap between clean and noisy samples.
    """
    z = torch.softmax(logits, dim=-1) if softmax_first else logits
    return F.cross_entropy(z.float(), labels, reduction="none")
