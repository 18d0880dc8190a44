"""SelfMix and its variants, all `SelfMixTrainer` under a config change.

The harness hands every method a config with no held-out slice and a fixed warm-up
(bench.cell_config: the paper's protocol); each method below sets what it needs.

- selfmix: what the app and the CLI run: the paper's method plus the label-free
  decision rule (decision.py): a 10% held-out slice, a warm-up that goes on while the
  slice's accuracy improves, and a recommended epoch.
- selfmix-best: selfmix, and when the warm-up ran one epoch past its held-out peak, SelfMix
  starts from the peak epoch's weights, optimizer state and split
  (ValidationConfig.handover_from_best).
- selfmix-paper: the paper's method exactly, where the paper is silent the authors'
  code (eval-pass soft labels, L_R summed, one pass over X per epoch, GMM with 10 EM
  iterations), trained on every sample with the fixed warm-up.
- selfmix-fast: the earlier engine's choices (`FastChoices.all()`, EM run to 100
  iterations / tol 1e-3), otherwise as selfmix-paper.
- Ablations (paper Table 5), of selfmix-paper: selfmix-no-lp (lambda_p = 0),
  selfmix-no-lr (lambda_r = 0), selfmix-no-mixup (mixup=False: L_mix becomes soft-target
  CE on unmixed embeddings).
- The public reference code's deviations (`ReferenceDeviations`), of selfmix-paper: one
  method per flag, and selfmix-ref with all of them on, i.e. the released code.
Flags: clean_prob is the GMM posterior of the low-loss component (paper Eq. 3).
"""

from __future__ import annotations

import dataclasses

from ...config import FastChoices, LossWeights, ReferenceDeviations, TrainConfig, ValidationConfig
from .base import TrainerMethod

_ALL_REF = ReferenceDeviations(softmax_before_ce=True, variance_norm=True, min_class_pseudo=True)


class SelfMixPaper(TrainerMethod):
    name = "selfmix-paper"
    summary = "SelfMix as the paper and the authors' code: GMM split, EmbMix, L_P and summed L_R, fixed warm-up"
    paper = "Qiao et al. 2022 (SelfMix)"
    flags = "GMM posterior of the low-loss component < tau"

    def configure(self, config):
        return config.replace(method="selfmix", fast=FastChoices())


class SelfMix(SelfMixPaper):
    name = "selfmix"
    summary = "SelfMix (paper) + label-free rule: 10% held out, warm-up while it improves, recommended epoch"

    def configure(self, config):
        return super().configure(config).replace(validation=ValidationConfig(),
                                                 extra_warmup_epochs=TrainConfig.extra_warmup_epochs)


class SelfMixBest(SelfMix):
    name = "selfmix-best"
    summary = "selfmix, and SelfMix starts from the best warm-up epoch's weights when the warm-up ran past its peak"

    def configure(self, config):
        return super().configure(config).replace(validation=ValidationConfig(handover_from_best=True))


class SelfMixFast(SelfMixPaper):
    name = "selfmix-fast"
    summary = "SelfMix with the earlier engine's choices (R-Drop soft labels, mean L_R, n/32 steps, long EM)"

    def configure(self, config):
        sel = dataclasses.replace(config.selection, gmm_max_iter=100, gmm_tol=1e-3)
        return config.replace(method="selfmix", fast=FastChoices.all(), selection=sel)


class SelfMixNoLP(SelfMixPaper):
    name = "selfmix-no-lp"
    summary = "SelfMix without the pseudo-label loss (lambda_p = 0)"

    def configure(self, config):
        return config.replace(method="selfmix", loss=LossWeights(lambda_p=0.0, lambda_r=config.loss.lambda_r))


class SelfMixNoLR(SelfMixPaper):
    name = "selfmix-no-lr"
    summary = "SelfMix without the R-Drop consistency loss (lambda_r = 0)"

    def configure(self, config):
        return config.replace(method="selfmix", loss=LossWeights(lambda_p=config.loss.lambda_p, lambda_r=0.0))


class SelfMixNoMixup(SelfMixPaper):
    name = "selfmix-no-mixup"
    summary = "SelfMix without EmbMix (soft-target CE on the unmixed embeddings)"

    def configure(self, config):
        return config.replace(method="selfmix", mixup=False)


def _reference_variant(method_name: str, field: str | None, text: str) -> type[SelfMixPaper]:
    ref = _ALL_REF if field is None else ReferenceDeviations(**{field: True})

    def configure(self, config):
        return config.replace(method="selfmix", reference=ref)

    return type(f"SelfMixRef_{field or 'all'}", (SelfMixPaper,), {
        "name": method_name, "summary": text, "paper": "github.com/noise-learning/SelfMix (released code)",
        "configure": configure, "__doc__": f"SelfMix with the reference code's behaviour: {text}.",
    })


SelfMixRef = _reference_variant("selfmix-ref", None, "all three deviations of the released code")
REFERENCE_VARIANTS = [SelfMixRef] + [
    _reference_variant(f"selfmix-ref-{short}", f.name, f"reference deviation {f.name} only")
    for short, f in zip(("softmax", "variance", "minclass"), dataclasses.fields(ReferenceDeviations))
]
