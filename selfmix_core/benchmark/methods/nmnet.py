"""NM-Net (Garg et al. 2021): a classifier plus an auxiliary noise model, trained jointly.

The noise model maps the classifier's clean-label distribution p (B, K) to a noisy-label
distribution q = p T, with T[true, noisy] = row-softmax(W) a learned K x K transition
initialised near the identity (0.9 on the diagonal), or, with transition_init="confusion",
from the warm-up: the soft counts of (predicted class, given label) over the scoring
pass, row-normalised, i.e. P(given | predicted), which estimates T[true, noisy] as far as
the warm-up predictions are right. W has its own Adam parameter group at
`transition_lr` (default 3e-2): at the encoder's learning rate (5e-5) a logit moves about
that much per step and T stays at its initialisation for a whole run; at 3e-2 it reaches
a known transition within 150 steps (tests/test_methods.py).

After warm-up, a two-component mixture fitted on the per-sample losses gives each
sample a clean weight w_i, kept fixed from then on, and the de-noising loss (the soft
variant, L_DN-S) is

    L = CE(q_i, y_i) + w_i * CE(p_i, y_i),    averaged over the batch,

so likely-noisy samples train the classifier mostly through the noise model. Test
predictions use the classifier p alone.

Departures from the paper: the mixture is the 2-component GMM of `selection.py` on
min-max normalised losses (the paper fits a beta mixture), fitted after the config's
warmup_epochs (paper: "an early epoch"); the noise model is this transition-matrix
layer, with its own learning rate. Flags: w_i < tau (fixed after warm-up; during
warm-up, the GMM split). `extras["transition"]`: the learned T after the latest epoch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import dataclasses
from ...selection import Selection
from .base import BaselineTrainer, Method

# Adam learning rate of the transition layer's own parameter group (see the docstring).
TRANSITION_LR = 3e-2
TRANSITION_INITS = ("identity", "confusion")


class NoiseModel(nn.Module):
    """(B, K) clean-label probabilities -> (B, K) noisy-label probabilities p @ row-softmax(W)."""

    def __init__(self, num_classes: int, diagonal: float = 0.9):
        super().__init__()
        if not 0.0 < diagonal < 1.0:
            raise ValueError(f"diagonal must be in (0, 1), got {diagonal}")
        k = num_classes
        t0 = np.full((k, k), (1.0 - diagonal) / (k - 1))
        np.fill_diagonal(t0, diagonal)
        self.weight = nn.Parameter(torch.log(torch.tensor(t0, dtype=torch.float32)))

    def transition(self) -> torch.Tensor:
        """(K, K) row-stochastic T[true, noisy]."""
        return torch.softmax(self.weight, dim=1)

    @torch.no_grad()
    def set_transition(self, t: np.ndarray, floor: float = 1e-3) -> None:
        """Start from the (K, K) row-stochastic `t` (entries floored at `floor`, rows renormalised)."""
        t = np.maximum(np.asarray(t, dtype=np.float64), floor)
        t = t / t.sum(1, keepdims=True)
        self.weight.copy_(torch.log(torch.as_tensor(t, dtype=torch.float32)))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p @ self.transition()

    def loss(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean CE of the noisy-label prediction q = p T against the given labels y (B,)."""
        return F.nll_loss(torch.log(self(p).clamp_min(1e-12)), y)


def predicted_given_transition(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """(M, K) softmax, (M,) given labels -> (K, K) P(given | predicted) from soft counts,
    the warm-up's estimate of T[true, noisy]; None when some class is never predicted."""
    counts = np.asarray(probs, dtype=np.float64).T @ np.eye(num_classes)[np.asarray(labels)]  # (K, K)
    rows = counts.sum(1, keepdims=True)
    if np.any(rows <= 0):
        return None
    return counts / rows


class NMNetTrainer(BaselineTrainer):
    phase_name = "nm-net"

    def __init__(self, *args, fit_after: int, transition_lr: float = TRANSITION_LR,
                 transition_init: str = "identity", **kw):
        super().__init__(*args, **kw)
        self.warmup_epochs_own = max(1, int(fit_after))
        self.transition_init = transition_init
        self.noise_model = NoiseModel(self.num_classes).to(self.device)
        # its own group: at the encoder's lr the transition would not move (see the docstring)
        self.optimizer.add_param_group({"params": list(self.noise_model.parameters()), "lr": float(transition_lr)})
        self.weights: np.ndarray | None = None  # (N,) clean weight w_i, set after warm-up

    def _ce_losses(self, b):
        if self.weights is None:
            return super()._ce_losses(b)
        enc = self._encode([self.train.texts[i] for i in b])
        y = self._to_device(torch.from_numpy(self.split.labels[b]))
        with self._autocast():
            logits = self.model(**enc)
        logits = logits.float()
        loss_nm = self.noise_model.loss(torch.softmax(logits, -1), y)
        w = self._to_device(torch.from_numpy(self.weights[b].astype(np.float32)))
        loss_clf = (w * F.cross_entropy(logits, y, reduction="none")).mean()
        loss = loss_nm + loss_clf
        return loss, {"noise_model": float(loss_nm.detach()), "classifier": float(loss_clf.detach()),
                      "loss": float(loss.detach())}

    def _build_report(self, epoch, phase, losses, n_seen, loss, probs, sel: Selection, *rest):
        mask = self.split.in_training
        tau = self.config.selection.tau
        if self.weights is None:
            if epoch >= self.warmup_epochs_own:  # fit the mixture once, at the end of warm-up
                w = np.ones(len(self.train))
                w[mask] = sel.clean_prob
                self.weights = w
                if self.transition_init == "confusion":
                    t = predicted_given_transition(probs[mask], self.split.labels[mask], self.num_classes)
                    if t is not None:  # else keep the identity start
                        self.noise_model.set_transition(t)
        else:
            w = self.weights[mask]
            sel = Selection(norm_loss=sel.norm_loss, clean_prob=w, is_clean=w >= tau, gmm=None, warnings=())
        return super()._build_report(epoch, phase, losses, n_seen, loss, probs, sel, *rest)


class NMNet(Method):
    name = "nm-net"
    summary = ("classifier + K x K noise-transition layer (its own learning rate), de-noising loss weighted by a "
               "loss-mixture clean weight")
    paper = "Garg et al. 2021 (NM-Net)"
    flags = "early-epoch loss-mixture clean weight < tau"

    @classmethod
    def departs_from_authors(cls, cell):
        # before issue #12 the transition layer sat in the encoder's Adam group (lr not recorded)
        lr = cell.get("extras", {}).get("transition_lr")
        if lr is None:
            return f"transition layer in the encoder's Adam group at lr {cell['settings']['lr']:g}, where it barely moves"
        return None

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        cfg = config.replace(selection=dataclasses.replace(config.selection, class_reg=False))
        fit_after = int(self.options.get("fit_after", config.warmup_epochs))
        lr = float(self.options.get("transition_lr", TRANSITION_LR))
        init = str(self.options.get("transition_init", "identity"))
        if lr <= 0 or init not in TRANSITION_INITS:
            raise ValueError(f"NM-Net needs transition_lr > 0 and transition_init in {TRANSITION_INITS}, "
                             f"got {lr}, {init!r}")
        trainer = self._trainer(NMNetTrainer, cfg, train, test, model_factory, tokenizer, callbacks, control,
                                fit_after=fit_after, transition_lr=lr, transition_init=init)
        self.extras = {"transition_lr": lr, "transition_init": init}
        for report in trainer.run():
            self.extras["transition"] = trainer.noise_model.transition().detach().cpu().numpy().round(4).tolist()
            yield report
