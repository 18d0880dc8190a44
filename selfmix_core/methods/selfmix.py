"""SelfMix and its variants, all `SelfMixTrainer` under a config change.

- selfmix: the paper's method (GMM selection, EmbMix, L_P, L_R).
- Ablations (paper Table 5): selfmix-no-lp (lambda_p = 0), selfmix-no-lr (lambda_r = 0),
  selfmix-no-mixup (mixup=False: L_mix becomes soft-target CE on unmixed embeddings).
- The public reference code's deviations (`ReferenceDeviations`): one method per flag,
  and selfmix-ref with all of them on, i.e. the behaviour of the released code.
Flags: clean_prob is the GMM posterior of the low-loss component (paper Eq. 3).
"""

from __future__ import annotations

import dataclasses

from ..config import LossWeights, ReferenceDeviations
from .base import TrainerMethod

_ALL_REF = ReferenceDeviations(softmax_before_ce=True, variance_norm=True, min_class_pseudo=True, kl_sum=True)


class SelfMix(TrainerMethod):
    name = "selfmix"
    summary = "SelfMix: GMM split, EmbMix, pseudo-label loss L_P and R-Drop L_R"
    paper = "Qiao et al. 2022 (SelfMix)"
    flags = "GMM posterior of the low-loss component < tau"

    def configure(self, config):
        return config.replace(method="selfmix")


class SelfMixNoLP(SelfMix):
    name = "selfmix-no-lp"
    summary = "SelfMix without the pseudo-label loss (lambda_p = 0)"

    def configure(self, config):
        return config.replace(method="selfmix", loss=LossWeights(lambda_p=0.0, lambda_r=config.loss.lambda_r))


class SelfMixNoLR(SelfMix):
    name = "selfmix-no-lr"
    summary = "SelfMix without the R-Drop consistency loss (lambda_r = 0)"

    def configure(self, config):
        return config.replace(method="selfmix", loss=LossWeights(lambda_p=config.loss.lambda_p, lambda_r=0.0))


class SelfMixNoMixup(SelfMix):
    name = "selfmix-no-mixup"
    summary = "SelfMix without EmbMix (soft-target CE on the unmixed embeddings)"

    def configure(self, config):
        return config.replace(method="selfmix", mixup=False)


def _reference_variant(method_name: str, field: str | None, text: str) -> type[SelfMix]:
    ref = _ALL_REF if field is None else ReferenceDeviations(**{field: True})

    def configure(self, config):
        return config.replace(method="selfmix", reference=ref)

    return type(f"SelfMixRef_{field or 'all'}", (SelfMix,), {
        "name": method_name, "summary": text, "paper": "github.com/noise-learning/SelfMix (released code)",
        "configure": configure, "__doc__": f"SelfMix with the reference code's behaviour: {text}.",
    })


SelfMixRef = _reference_variant("selfmix-ref", None, "all four deviations of the released code")
REFERENCE_VARIANTS = [SelfMixRef] + [
    _reference_variant(f"selfmix-ref-{short}", f.name, f"reference deviation {f.name} only")
    for short, f in zip(("softmax", "variance", "minclass", "klsum"), dataclasses.fields(ReferenceDeviations))
]
