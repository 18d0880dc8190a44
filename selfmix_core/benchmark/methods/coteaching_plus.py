"""Co-Teaching+ (Yu et al. 2019): Co-Teaching restricted to the samples the two disagree on.

For the first `init_epoch` epochs it is plain Co-Teaching. Afterwards, per batch, only
the samples on which the two networks' predictions differ take part; on those, the
small-loss cross update of Co-Teaching is applied with the same forget rate.

Departures from the paper: init_epoch = the config's warmup_epochs (2); the authors'
code updates on the whole batch when nothing is disagreed on during its first 5,000
steps (and skips the update after that): every benchmark run here is shorter than
5,000 steps, so such a batch gets the plain cross-entropy update of both networks.
Schedule (forget rate reaching r after T_k = 4 epochs), forget rate and flags as in
`coteaching`.
"""

from __future__ import annotations

import torch.nn.functional as F

from .coteaching import CoTeaching, CoTeachingTrainer


class CoTeachingPlusTrainer(CoTeachingTrainer):
    phase_name = "co-teaching+"

    def __init__(self, *args, init_epoch: int, **kw):
        super().__init__(*args, **kw)
        self.init_epoch = int(init_epoch)

    def _ce_losses(self, b):
        l1, l2, y = self._two_logits(b)
        rate = self.current_rate()
        if self.epoch <= self.init_epoch:
            return self._cross_update(l1, l2, y, rate)
        disagree = (l1.argmax(1) != l2.argmax(1)).nonzero().flatten()
        if disagree.numel() == 0:
            loss1, loss2 = F.cross_entropy(l1, y), F.cross_entropy(l2, y)
            total = loss1 + loss2
            return total, {"loss": float(total.detach()), "ce1": float(loss1.detach()),
                           "ce2": float(loss2.detach()), "kept": 1.0, "disagree": 0.0}
        total, comps = self._cross_update(l1[disagree], l2[disagree], y[disagree], rate)
        comps["kept"] *= float(disagree.numel()) / len(b)  # share of the whole batch that trained
        comps["disagree"] = float(disagree.numel()) / len(b)
        return total, comps


class CoTeachingPlus(CoTeaching):
    name = "co-teaching-plus"
    summary = "Co-Teaching on the samples the two networks disagree on"
    paper = "Yu et al. 2019 (Co-teaching+)"
    trainer_class = CoTeachingPlusTrainer

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        self.options.setdefault("init_epoch", config.warmup_epochs)
        return super().run(train, test, config, model_factory, tokenizer, callbacks, control, noise_rate)

    def _trainer(self, klass, *args, **kw):
        self.extras["init_epoch"] = int(self.options["init_epoch"])
        return super()._trainer(klass, *args, init_epoch=int(self.options["init_epoch"]), **kw)
