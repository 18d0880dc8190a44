"""ELR, Early-Learning Regularisation (Liu et al. 2020).

Each sample i keeps a running target t_i = beta * t_i + (1 - beta) * p_i (p: the
detached softmax, clamped to [1e-4, 1 - 1e-4] and renormalised, updated whenever i is in
a batch); the loss is CE + lam * mean_i log(1 - <p_i, t_i>), which stops the model from
drifting away from what it predicted during early learning. beta = 0.7, lam = 3: the
authors' CIFAR-10 values. The plain-CE variant of ELR is used (not ELR+, which adds
a second network, weight averaging and mixup). ELR flags nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import BaselineTrainer, Method


class ELRTrainer(BaselineTrainer):
    phase_name = "elr"

    def __init__(self, *args, lam: float, beta: float, **kw):
        super().__init__(*args, **kw)
        self.lam, self.beta = float(lam), float(beta)
        self.target = torch.zeros(len(self.train), self.num_classes, device=self.device)  # (N, K)

    def _ce_losses(self, b):
        enc = self._encode([self.train.texts[i] for i in b])
        y = self._to_device(torch.from_numpy(self.split.labels[b]))
        with self._autocast():
            logits = self.model(**enc)
        logits = logits.float()
        p = torch.softmax(logits, -1).clamp(1e-4, 1.0 - 1e-4)  # (B, K)
        idx = self._to_device(torch.from_numpy(b))
        with torch.no_grad():
            pd = p.detach()
            self.target[idx] = self.beta * self.target[idx] + (1.0 - self.beta) * pd / pd.sum(1, keepdim=True)
        ce = F.cross_entropy(logits, y)
        reg = torch.log(1.0 - (self.target[idx] * p).sum(1)).mean()
        loss = ce + self.lam * reg
        return loss, {"ce": float(ce.detach()), "elr": float(reg.detach()), "loss": float(loss.detach())}


class ELR(Method):
    name = "elr"
    summary = "early-learning regularisation towards running-average targets"
    paper = "Liu et al. 2020 (ELR)"

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        lam, beta = float(self.options.get("lam", 3.0)), float(self.options.get("beta", 0.7))
        if lam < 0 or not 0.0 <= beta < 1.0:
            raise ValueError(f"ELR needs lam >= 0 and beta in [0, 1), got {lam}, {beta}")
        yield from self._trainer(ELRTrainer, config, train, test, model_factory, tokenizer, callbacks, control,
                                 lam=lam, beta=beta).run()
