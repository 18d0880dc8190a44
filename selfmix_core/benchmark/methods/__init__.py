"""Every training method the benchmark compares, behind one interface.

    from selfmix_core.benchmark.methods import METHODS, run_method
    for report in run_method("co-teaching", train, test, config, noise_rate=0.4):
        ...  # EpochReport, exactly as SelfMixTrainer.run() yields them

`METHODS` maps each name to its `Method` class (see `base.Method`): CE, SelfMix and
its ablations / reference-code variants reuse `SelfMixTrainer` through a config change;
the other baselines subclass it and replace only the per-batch loss (and the flags
they report). `get_method(name, **options)` gives an instance whose `extras` hold
method-specific results after `run`.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from ...config import TrainConfig
from ...data import TextDataset
from ...reports import EpochReport
from .base import Method, ModelFactory, pretrained_factory, ranked_clean_prob
from .ce import CE
from .confident_learning import ConfidentLearning
from .coteaching import CoTeaching
from .coteaching_plus import CoTeachingPlus
from .cores2 import CORES2
from .elr import ELR
from .nmnet import NMNet
from .sce import SCE
from .selfmix import (REFERENCE_VARIANTS, SelfMix, SelfMixBest, SelfMixFast, SelfMixNoLP, SelfMixNoLR, SelfMixNoMixup,
                      SelfMixPaper)

METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (CE, CoTeaching, CoTeachingPlus, SCE, ELR, ConfidentLearning, NMNet, CORES2, SelfMix, SelfMixBest,
              SelfMixPaper, SelfMixFast, SelfMixNoLP, SelfMixNoLR, SelfMixNoMixup, *REFERENCE_VARIANTS)
}

# Named groups for the harness's --methods.
GROUPS: dict[str, tuple[str, ...]] = {
    "baselines": ("ce", "co-teaching", "co-teaching-plus", "sce", "elr", "cl", "nm-net", "cores2"),
    "paper": ("ce", "co-teaching", "co-teaching-plus", "sce", "elr", "cl", "nm-net", "cores2", "selfmix"),
    "ablations": ("selfmix-no-lp", "selfmix-no-lr", "selfmix-no-mixup"),
    "variants": ("selfmix", "selfmix-paper", "selfmix-fast"),
    "reference": tuple(m.name for m in REFERENCE_VARIANTS),
}
GROUPS["all"] = tuple(METHODS)

# Methods that no longer run but whose committed cells are still drawn, with the group
# their rows belong to. selfmix-ref-klsum: L_R summed over U instead of averaged, a
# deviation of the released code until `selfmix` itself adopted it (the authors' choice).
RETIRED: dict[str, str] = {"selfmix-ref-klsum": "reference"}


def get_method(name: str, **options) -> Method:
    """A fresh instance of the method `name` with its options (see each module)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](**options)


def run_method(
    name: str,
    train: TextDataset,
    test: TextDataset | None,
    config: TrainConfig,
    model_factory: ModelFactory | None = None,
    tokenizer=None,
    *,
    noise_rate: float | None = None,
    callbacks: Sequence = (),
    control=None,
    **options,
) -> Iterator[EpochReport]:
    """Train with method `name` and yield one EpochReport per epoch.

    train: (N samples) given labels, true_labels optional (metrics only); test: optional.
    model_factory: (num_labels, seed) -> TextClassifier; None loads config.model's
        pretrained encoder (then the tokenizer is loaded too).
    noise_rate: the true noise rate, needed by the Co-Teaching family (forget rate).
    """
    method = get_method(name, **options)
    if model_factory is None:
        model_factory, tok = pretrained_factory(config.model)
        tokenizer = tokenizer or tok
    if tokenizer is None:
        raise ValueError("a tokenizer must be given together with a model_factory")
    return method.run(train, test, config, model_factory, tokenizer, callbacks=callbacks, control=control,
                      noise_rate=noise_rate)


__all__ = ["GROUPS", "METHODS", "RETIRED", "Method", "ModelFactory", "get_method", "pretrained_factory", "ranked_clean_prob",
           "run_method"]
