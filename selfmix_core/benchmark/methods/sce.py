"""SCE, Symmetric Cross Entropy (Wang et al. 2019): alpha * CE + beta * RCE.

RCE (reverse cross-entropy) = -sum_k p_k log q_k with the one-hot label q clamped to
[1e-4, 1] (so log 0 becomes log 1e-4, as in the authors' code; the paper writes A = -4)
and p = softmax clamped to [1e-7, 1]. alpha = 0.4, beta = 1.0 (options `alpha`,
`beta`): the defaults of the SelfMix authors' baseline script (baselines/train_sce.py),
which the SelfMix paper does not restate (the SCE paper's CIFAR-10 values are 0.1 and
1.0). SCE flags nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import BaselineTrainer, Method

# The SelfMix authors' SCE defaults (baselines/train_sce.py): alpha * CE + beta * RCE.
ALPHA, BETA = 0.4, 1.0


def sce_loss(logits: torch.Tensor, y: torch.Tensor, alpha: float, beta: float) -> tuple[torch.Tensor, dict]:
    """(B, K) logits, (B,) labels -> scalar alpha * CE + beta * RCE and its components."""
    ce = F.cross_entropy(logits, y)
    p = torch.softmax(logits, -1).clamp(1e-7, 1.0)
    q = F.one_hot(y, logits.shape[1]).float().clamp(1e-4, 1.0)
    rce = -(p * torch.log(q)).sum(1).mean()
    return alpha * ce + beta * rce, {"ce": float(ce.detach()), "rce": float(rce.detach())}


class SCETrainer(BaselineTrainer):
    phase_name = "sce"

    def __init__(self, *args, alpha: float, beta: float, **kw):
        super().__init__(*args, **kw)
        self.alpha, self.beta = float(alpha), float(beta)

    def _ce_losses(self, b):
        enc = self._encode([self.train.texts[i] for i in b])
        y = self._to_device(torch.from_numpy(self.split.labels[b]))
        with self._autocast():
            logits = self.model(**enc)
        loss, comps = sce_loss(logits.float(), y, self.alpha, self.beta)
        comps["loss"] = float(loss.detach())
        return loss, comps


class SCE(Method):
    name = "sce"
    summary = "symmetric cross-entropy: CE plus reverse CE (noise-robust loss)"
    paper = "Wang et al. 2019 (SCE)"

    @classmethod
    def departs_from_authors(cls, cell):
        # before issue #12 alpha was the SCE paper's CIFAR-10 value, 0.1, and not recorded
        alpha = cell.get("extras", {}).get("alpha", 0.1)
        beta = cell.get("extras", {}).get("beta", BETA)
        if (alpha, beta) != (ALPHA, BETA):
            return f"alpha {alpha:g}, beta {beta:g} (the authors' script: {ALPHA:g}, {BETA:g})"
        return None

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        alpha, beta = float(self.options.get("alpha", ALPHA)), float(self.options.get("beta", BETA))
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"SCE needs alpha, beta >= 0 and not both 0, got {alpha}, {beta}")
        self.extras = {"alpha": alpha, "beta": beta}
        yield from self._trainer(SCETrainer, config, train, test, model_factory, tokenizer, callbacks, control,
                                 alpha=alpha, beta=beta).run()
