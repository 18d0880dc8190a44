"""The common interface of every training method, and the pieces they share.

A `Method` turns (train, test, TrainConfig, model factory, tokenizer) into an iterator
of `EpochReport`s, one per epoch, exactly like `SelfMixTrainer.run()`: the harness and
every report consumer treat all methods alike. Per-sample arrays in the reports are
indexed by the training set (N,). `clean_prob` always means "lower = more likely
mislabeled" and `clean_prob < tau` is the set the method flags; methods that do not
flag samples (see `Method.flags`) still carry the trainer's GMM-on-loss split, which
the harness does not present as that method's detection.

Baselines that need another training loop subclass `BaselineTrainer` (a
`SelfMixTrainer` in CE mode) and override its per-batch loss `_ce_losses(b)` and, to
report their own flags instead of the GMM split, `_method_selection(loss, probs)`.
Tokenisation, the scoring pass, test evaluation, metrics, report building, stop flag,
callbacks and the per-epoch RNG derivation all come from the trainer unchanged.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ...config import ModelConfig, TrainConfig
from ...data import TextDataset
from ...model import TextClassifier, load_encoder, load_tokenizer
from ...reports import EpochReport
from ...selection import Selection
from ...config import derive_seed  # noqa: F401  (re-exported: the methods use it from here)
from ...trainer import SelfMixTrainer, TrainerCallback, TrainerControl

# (num_labels, seed) -> a freshly initialised TextClassifier. Same seed, same weights.
ModelFactory = Callable[[int, int], TextClassifier]



def pretrained_factory(model_config: ModelConfig) -> tuple[ModelFactory, object]:
    """(factory, tokenizer) for the configured pretrained encoder.

    The encoder is loaded from disk once and deep-copied for every model, so models made
    by the same factory start from the same pretrained weights; the head is initialised
    inside `torch.random.fork_rng` from `seed`, leaving the global RNG untouched.
    """
    tokenizer = load_tokenizer(model_config.model)
    encoder = load_encoder(model_config.model)

    def make(num_labels: int, seed: int = 0) -> TextClassifier:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return TextClassifier(copy.deepcopy(encoder), num_labels, model_config)

    return make, tokenizer


def ranked_clean_prob(suspicion: np.ndarray, flagged: np.ndarray, tau: float) -> np.ndarray:
    """Turn a method's own verdict into a clean_prob that the reports understand.

    suspicion: (N,) higher = more likely mislabeled; flagged: (N,) bool, the method's flags.
    Returns (N,) in [0, 1]: flagged samples get values in [0, tau), the others [tau, 1],
    each group ordered by suspicion (most suspicious lowest). So `clean_prob < tau` is
    exactly the flagged set and the ranking (hence AUROC) follows the suspicion score
    within each group.
    """
    suspicion = np.asarray(suspicion, dtype=np.float64)
    flagged = np.asarray(flagged, dtype=bool)
    if suspicion.shape != flagged.shape or suspicion.ndim != 1:
        raise ValueError(f"suspicion and flagged must be 1-D of one length, got {suspicion.shape} and {flagged.shape}")
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be strictly between 0 and 1, got {tau}")
    out = np.empty(len(suspicion), dtype=np.float64)
    for group, lo, hi in ((flagged, 0.0, tau), (~flagged, tau, 1.0)):
        idx = np.flatnonzero(group)
        if idx.size == 0:
            continue
        order = idx[np.argsort(-suspicion[idx], kind="stable")]  # most suspicious first
        out[order] = lo + (hi - lo) * np.arange(idx.size) / idx.size
    return out


def method_selection(suspicion: np.ndarray, flagged: np.ndarray, tau: float) -> Selection:
    """A `Selection` carrying a method's own flags (no GMM). Arrays (N,)."""
    clean_prob = ranked_clean_prob(suspicion, flagged, tau)
    return Selection(norm_loss=np.asarray(suspicion, dtype=np.float64), clean_prob=clean_prob,
                     is_clean=clean_prob >= tau, gmm=None, warnings=())


class BaselineTrainer(SelfMixTrainer):
    """A SelfMixTrainer in CE mode whose per-batch loss and reported flags a baseline sets.

    Subclasses override `_ce_losses(b)` (b: (B,) train indices -> (scalar loss, components
    dict with the objective under "loss" or "ce"); report.losses holds the epoch means)
    and optionally `_method_selection(loss, probs)`. `self.epoch` is the 1-based epoch being
    trained; `self.phase_name` labels the epochs after `warmup_epochs_own` warm-up epochs.
    """

    phase_name = "baseline"
    warmup_epochs_own = 0

    def __init__(self, config: TrainConfig, *args, **kwargs):
        if config.method != "ce":
            config = config.replace(method="ce")
        super().__init__(config, *args, **kwargs)
        self.epoch = 0

    def _phase_for_next_epoch(self) -> str:
        return "warmup" if self.state.epochs_done < self.warmup_epochs_own else self.phase_name

    def _train_ce_epoch(self, epoch, phase, gen):
        self.epoch = epoch
        self._sums: dict[str, float] = {}
        self._count = 0
        out = super()._train_ce_epoch(epoch, phase, gen)
        if out is None:
            return None
        losses, seen = out
        if self._count:  # the epoch's mean of every component the baseline's loss reported
            losses = {k: v / self._count for k, v in self._sums.items()}
        return losses, seen

    def _optimise(self, parts, loss_fn):
        # Accumulate all loss components (the CE loop keeps only "ce"); "loss" is the objective.
        agg = super()._optimise(parts, loss_fn)
        n = sum(len(p) for p in parts)
        for k, v in agg.items():
            self._sums[k] = self._sums.get(k, 0.0) + v * n
        self._count += n
        return agg if "ce" in agg else {**agg, "ce": agg["loss"]}

    def _method_selection(self, loss: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                          index: np.ndarray) -> Selection | None:
        """Override to report the method's own flags; None keeps the trainer's GMM split.

        Called after each epoch's scoring pass (dropout off) with the M samples still in
        training: loss (M,) per-sample CE of the given labels, probs (M, K), labels (M,)
        and index (M,) their positions in the train set. Return a Selection over those M.
        """
        return None

    def _build_report(self, epoch, phase, losses, n_seen, loss, probs, sel, *rest):
        mask = self.split.in_training
        own = self._method_selection(loss[mask], probs[mask], self.split.labels[mask], np.flatnonzero(mask))
        return super()._build_report(epoch, phase, losses, n_seen, loss, probs, own if own is not None else sel, *rest)


class Method:
    """One training method behind the common interface.

    Class attributes: name (the registry key), summary (one line), paper (citation),
    flags (what `clean_prob < tau` means for this method, or None when it flags nothing:
    the harness then shows no detection columns for it), needs_noise_rate (the method
    uses the true noise rate, as Co-Teaching's forget rate does).
    After `run` finished, `extras` holds method-specific results (e.g. cleanlab timings).
    """

    name = ""
    summary = ""
    paper = ""
    flags: str | None = None
    needs_noise_rate = False

    def __init__(self, **options):
        self.options = dict(options)
        self.extras: dict = {}
        self.ran_config: TrainConfig | None = None

    @classmethod
    def departs_from_authors(cls, cell: dict) -> str | None:
        """Why a result cell of this method (the harness's JSON document) did not run at the
        settings of the method's authors (issue #12: the SelfMix authors' baseline scripts, else
        the method's paper), in a few words; None when it did. Cells made before a setting was
        fixed lack the extras that record it, which is how the tables mark them."""
        return None

    def run(
        self,
        train: TextDataset,
        test: TextDataset | None,
        config: TrainConfig,
        model_factory: ModelFactory,
        tokenizer,
        callbacks: Sequence[TrainerCallback] = (),
        control: TrainerControl | None = None,
        noise_rate: float | None = None,
    ) -> Iterator[EpochReport]:
        raise NotImplementedError

    # helpers for subclasses
    def _trainer(self, klass, config, train, test, model_factory, tokenizer, callbacks, control, **kw):
        model = model_factory(train.num_classes, derive_seed(config.seed, 0))
        trainer = klass(config, train, test, model=model, tokenizer=tokenizer, callbacks=callbacks,
                        control=control, **kw)
        self.ran_config = trainer.config  # what the trainer actually ran (the harness records it)
        return trainer


class TrainerMethod(Method):
    """A method that is SelfMixTrainer itself under a config change (CE, SelfMix, ablations)."""

    def configure(self, config: TrainConfig) -> TrainConfig:
        raise NotImplementedError

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        cfg = self.configure(config)
        trainer = self._trainer(SelfMixTrainer, cfg, train, test, model_factory, tokenizer, callbacks, control)
        yield from trainer.run()
