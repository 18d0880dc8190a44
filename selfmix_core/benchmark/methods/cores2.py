"""CORES2 (Cheng et al. 2021): confidence regularisation plus progressive sieving.

Per sample, with l_j = -log(softmax_j + 1e-8) the loss against class j:
    regularised loss  l_y - beta * sum_j prior_j l_j    (prior: the noisy-label class shares)
    sieve statistic   l_y - mean_j l_j                  (> 0: sieved out as corrupted)
Once sieving has started, a batch's loss is the mean regularised loss of the samples
that pass the sieve. beta = 0 and no sieve during warm-up, then beta rises linearly
to 2 by the last epoch and the sieve is on (the authors' 100-epoch schedule --
beta 0 for 10 epochs, 0 -> 2 over 30, sieve after 30 -- compressed into 6 epochs).

Departure from the paper: the SelfMix paper compares against CORES2* = CORES2 followed
by semi-supervised consistency training (UDA) on the sieved-out samples; that second
phase needs text augmentation (back-translation) and is NOT implemented here. Flags:
the sieve statistic > 0 in each epoch's scoring pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import BaselineTrainer, Method, method_selection

_EPS = 1e-8


def cores_terms(logits: torch.Tensor, y: torch.Tensor, prior: torch.Tensor, beta: float):
    """(B, K) logits, (B,) labels, (K,) prior -> (regularised loss (B,), sieve statistic (B,))."""
    ce = F.cross_entropy(logits, y, reduction="none")
    all_losses = -torch.log(torch.softmax(logits, -1) + _EPS)  # (B, K)
    regularised = ce - beta * (all_losses * prior).sum(1)
    sieve = ce - all_losses.mean(1)
    return regularised, sieve


class CORES2Trainer(BaselineTrainer):
    phase_name = "cores2"

    def __init__(self, *args, beta_max: float, start: int, **kw):
        super().__init__(*args, **kw)
        self.beta_max, self.warmup_epochs_own = float(beta_max), int(start)
        counts = np.bincount(self.split.labels, minlength=self.num_classes).astype(np.float32)
        self.prior = self._to_device(torch.from_numpy(counts / counts.sum()))

    def beta(self, epoch: int) -> float:
        w, e = self.warmup_epochs_own, self.config.epochs
        if epoch <= w:
            return 0.0
        return self.beta_max * min(1.0, (epoch - w) / max(e - w, 1))

    def _ce_losses(self, b):
        enc = self._encode([self.train.texts[i] for i in b])
        y = self._to_device(torch.from_numpy(self.split.labels[b]))
        with self._autocast():
            logits = self.model(**enc)
        reg, sieve = cores_terms(logits.float(), y, self.prior, self.beta(self.epoch))
        if self.epoch <= self.warmup_epochs_own:
            keep = torch.ones_like(sieve, dtype=torch.bool)
        else:
            keep = sieve.detach() <= 0
        if keep.any():
            loss = reg[keep].mean()
        else:  # the authors' code: a vanishing loss when the whole batch is sieved out
            loss = reg.mean() / 1e8
        return loss, {"loss": float(loss.detach()), "kept": float(keep.float().mean())}

    def _method_selection(self, loss, probs, labels, index):
        all_losses = -np.log(probs.astype(np.float64) + _EPS)  # (M, K)
        sieve = loss - all_losses.mean(1)
        return method_selection(sieve, sieve > 0, self.config.selection.tau)


class CORES2(Method):
    name = "cores2"
    summary = ("confidence-regularised loss with progressive sieving; WITHOUT the semi-supervised phase of the "
               "paper's CORES2* (UDA consistency training on the sieved-out samples, which needs back-translation)")
    paper = "Cheng et al. 2021 (CORES2)"
    flags = "sieve statistic l_y - mean_j l_j > 0"

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        beta_max = float(self.options.get("beta_max", 2.0))
        start = int(self.options.get("sieve_after", config.warmup_epochs))
        if beta_max < 0:
            raise ValueError(f"beta_max must be >= 0, got {beta_max}")
        yield from self._trainer(CORES2Trainer, config, train, test, model_factory, tokenizer, callbacks, control,
                                 beta_max=beta_max, start=start).run()
