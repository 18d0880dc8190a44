"""The SelfMix trainer: a generator of one `EpochReport` per epoch.

    for report in SelfMixTrainer(config, train, test).run():
        ...  # report.epoch, report.phase, report.clean_prob, report.test_accuracy ...

One epoch is:

  1. train -- warm-up / CE: cross-entropy over the training samples.
              SelfMix (paper section 3): each step takes batch_size/2 samples from the
              labeled set X and batch_size/2 from the unlabeled set U (as selected at the
              end of the previous epoch); predicts u with dropout OFF and no gradient and
              sharpens that into u's soft labels (the authors' eval-mode pass); runs ONE
              encoder forward over [x; u; u] with dropout on (the two copies of u get
              independent masks: the two R-Drop passes); mixes the pooled embeddings of
              [x; u] with lambda' = max(l, 1-l), l ~ Beta(alpha, alpha) (EmbMix), and
              minimises L_mix + lambda_p * L_P + lambda_r * L_R, L_P averaged over the
              two passes and L_R summed over u (Eq. 16). One epoch is one pass over X.
  2. score -- dropout OFF, one pass over every training sample: per-sample CE, the
              prediction and its probability; GMM selection (selection.py), fitted on
              the trained samples. This is both what the report shows and the split the
              NEXT epoch trains on.
  3. the held-out slice's accuracy and loss against its given labels (decision.py): they
     extend the warm-up while the model still learns and pick the recommended epoch;
     evaluate the test set (if any), compute metrics, write a checkpoint, yield.

Control: `TrainerControl.stop()` (thread-safe) is checked between batches; the run
then ends cleanly without a report for the unfinished epoch, and can resume from the
last checkpoint. Callbacks receive named events in this order:
on_train_begin, (on_epoch_begin, on_step_end*, on_epoch_end)*, on_train_end.

Review decisions (`apply_decisions`) change the training set from the next epoch on:
a relabeled or kept sample trains as clean (always in X) with its decided label, a
dropped sample leaves training (it is still scored, but gets clean_prob NaN).

Randomness: every epoch derives its own generators from (seed, epoch), and dropout
runs inside `torch.random.fork_rng`, so the trainer leaves no global RNG state behind
and a resumed run reproduces an uninterrupted one.

Speed (SpeedConfig, speed.py; all off in configs saved before it): batches grouped by
token length within shuffled chunks, tokens cached per run, bf16 autocast on a CPU with
native bf16 (always on CUDA), inference-mode scoring in token-length order, fused Adam,
a fixed stratified test sample before the last epoch, and optional provisional flags
during the first epoch (on_provisional).

Distribution: with a `DistContext` of several ranks (torchrun), each rank trains and
scores its share of every batch, gradients and per-sample arrays are summed across
ranks, and the GMM is fitted on rank 0 (distributed.py); with the default context all
of that is a no-op and nothing else changes.

Extending (the baselines in selfmix_core/benchmark/methods/ do this): subclass SelfMixTrainer and
override the epoch's building blocks, which are the supported hooks:
  _phase_for_next_epoch() -> str          which kind of epoch comes next;
  _train_ce_epoch(epoch, phase, gen)      the cross-entropy epoch loop;
  _ce_losses(b) -> (loss, components)     the loss of one batch of indices b;
  _optimise(parts, loss_fn) -> dict       one optimisation step (micro-batching, OOM);
  _score(texts, labels)                   the no-dropout scoring pass;
  _build_report(...) -> EpochReport       metrics and per-sample arrays of an epoch.
tests/test_methods.py runs every subclass, so a change to these signatures shows there.

Where the paper is silent the authors' released code decides (eval-pass soft labels,
L_P over both passes, one pass over X per epoch, GMM with 10 EM iterations); an earlier
version of this engine did otherwise, and those choices stay as `FastChoices` flags
(the "selfmix-fast" method). Choices of ours (also in README):
  * U is cycled when it is smaller than X's pass needs;
  * if X or U is empty, the epoch trains on the other set alone and says so in
    `report.fallback` (mixup then mixes within that set; L_P and L_R need U);
  * a held-out slice (ValidationConfig.fraction, default 10%) is never trained on;
    `validation.fraction = 0` trains on every sample as the paper does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pickle  # only for its exception type: checkpoints never unpickle
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import SpeedConfig, TrainConfig, derive_seed
from .data import TextDataset
from .decision import (collapse_warning, held_out_metrics, majority_share, prediction_warnings, recommend_epoch,
                       validation_split, warmup_should_continue)
from .distributed import DistContext
from .losses import embmix, per_sample_ce, pseudo_label_loss, rdrop_kl, sample_mix_lambda, sharpen, soft_cross_entropy
from .metrics import accuracy, confusion_counts, detection_metrics, macro_f1
from .model import TextClassifier, build_classifier
from .reports import EpochReport, GMMParams, StepProgress, top_k
from .selection import Selection, select
from .speed import (ProvisionalFlags, TokenCache, grouped_batches, grouped_order, provisional_steps, stratified_sample,
                    token_cache_fits, use_bf16)

CHECKPOINT_FORMAT = 1


class TrainerControl:
    """A thread-safe stop flag shared between the trainer and whoever drives it."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    @property
    def should_stop(self) -> bool:
        return self._stop.is_set()


class TrainerCallback:
    """Override any of these; the trainer calls them in the order given in the module doc."""

    def on_train_begin(self, trainer: "SelfMixTrainer") -> None: ...
    def on_epoch_begin(self, trainer: "SelfMixTrainer", epoch: int, phase: str) -> None: ...
    def on_step_end(self, trainer: "SelfMixTrainer", progress: StepProgress) -> None: ...
    def on_epoch_end(self, trainer: "SelfMixTrainer", report: EpochReport) -> None: ...
    def on_provisional(self, trainer: "SelfMixTrainer", flags: "ProvisionalFlags") -> None: ...
    def on_train_end(self, trainer: "SelfMixTrainer", stopped: bool) -> None: ...


@dataclass
class TrainerState:
    """What a checkpoint must restore besides the weights and the optimizer."""

    epochs_done: int = 0
    warmup_samples_seen: int = 0
    warmup_epochs_done: int = 0
    extra_warmup_used: int = 0
    warmup_finished: bool = False
    total_epochs: int = 0
    # [[epoch, phase, held-out accuracy, held-out loss], ...] (None without a slice): what the
    # decision rule reads.
    val_history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Split:
    """Arrays (N,) describing what the next epoch trains on."""

    labels: np.ndarray  # int64 training labels (given, after review decisions)
    in_training: np.ndarray  # bool, False for dropped samples
    forced_clean: np.ndarray  # bool, decided by a reviewer: always in X
    in_validation: np.ndarray  # bool, the held-out slice: scored, never trained on
    is_clean: np.ndarray | None = None  # bool from the last selection; None before any
    separation: float | None = None
    extra: dict = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:  # "bogus": TrainConfig refuses it first; this covers other callers
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} was asked for but there are {torch.cuda.device_count()} CUDA GPUs "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use --device cuda or auto")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was asked for but Apple's Metal (MPS) is not available; use --device cpu or auto")
    return dev


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"


class SelfMixTrainer:
    """Trains a TextClassifier with SelfMix (or plain CE) and yields EpochReports.

    train: the training TextDataset (given labels; true_labels if known, for metrics only).
    test: optional held-out TextDataset in the same label space (true labels).
    model, tokenizer: inject a ready model (tests use a tiny random BERT); otherwise built
        from config.model.
    checkpoint_dir: where each epoch's checkpoint goes (None: no checkpoints).
    resume: continue from the latest checkpoint in checkpoint_dir if there is one;
        `resumed_report` then holds that checkpoint's EpochReport.
    dist: this process's place in a data-parallel run (distributed.py); default one
        process. Every rank yields the same reports; rank 0 writes the checkpoints.
    """

    def __init__(
        self,
        config: TrainConfig,
        train: TextDataset,
        test: TextDataset | None = None,
        model: TextClassifier | None = None,
        tokenizer=None,
        callbacks: Sequence[TrainerCallback] = (),
        control: TrainerControl | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        dist: DistContext | None = None,
    ):
        if len(train) < 2:
            raise ValueError("the training set needs at least 2 samples")
        if train.num_classes < 2:
            raise ValueError("the training set needs at least 2 classes")
        if test is not None and list(test.label_names) != list(train.label_names):
            raise ValueError("the test set must use the train set's label names (load it with label_names=train.label_names)")
        self.config = config
        self.dist = dist or DistContext()  # one process unless run under torchrun
        self.train = train
        self.test = test
        self.num_classes = train.num_classes
        self.callbacks = list(callbacks)
        self.control = control or TrainerControl()
        self.device = resolve_device(config.device)
        if model is None:
            # The fresh head is initialised from the run's seed (role 0, as the bench's
            # model factory does), so the seed reproduces the whole run.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(config.seed, 0))
                bundle = build_classifier(self.num_classes, config.model)
            model, tokenizer = bundle.model, bundle.tokenizer
        if tokenizer is None:
            raise ValueError("a tokenizer must be given together with an injected model")
        if model.num_labels != self.num_classes:
            raise ValueError(f"model has {model.num_labels} outputs but the data has {self.num_classes} classes")
        self.model = model.to(self.device)
        self.dist.broadcast_module(self.model)  # one starting point for every rank
        self.tokenizer = tokenizer
        fused = config.speed.fused_adam and self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, **({"fused": True} if fused else {}))
        self.state = TrainerState(total_epochs=config.epochs)
        n = len(train)
        # The held-out slice depends on the seed and the given labels only (never on true
        # labels), so a resumed run recomputes the same one.
        in_validation = validation_split(np.asarray(train.labels), self.num_classes, config.validation,
                                         np.random.default_rng([config.seed, 7]))
        self.split = _Split(
            labels=np.asarray(train.labels, dtype=np.int64).copy(),
            in_training=np.ones(n, dtype=bool),
            forced_clean=np.zeros(n, dtype=bool),
            in_validation=in_validation,
        )
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        # After resume: the report of the checkpoint's epoch, for consumers that missed it.
        self.resumed_report: EpochReport | None = None
        if resume and self.checkpoint_dir is not None and (self.checkpoint_dir / "latest.json").is_file():
            self._load_checkpoint()
        # bf16 autocast: always on CUDA; on a CPU with native bf16 when speed.bf16_cpu.
        self._amp = use_bf16(self.device, config.speed.bf16_cpu)
        self._caches: list[tuple[Sequence[str], TokenCache | None]] = []  # (texts, their tokens)
        self._test_eval: tuple[np.ndarray, list[str]] | None = None  # the fixed test sample
        self._micro = 1  # micro-batches per step; doubled on out-of-memory
        self._score_bs = config.score_batch_size  # halved on out-of-memory
        self._notices: list[str] = []  # resource notices for the current epoch's report
        # validation.handover_from_best: the warm-up epoch with the best held-out accuracy so
        # far (its epoch, accuracy, weights and optimizer state on the CPU, and its split)
        self._best_warmup: dict | None = None

    # ---- public API ------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return device_description(self.device)

    def apply_decisions(self, decisions: dict[int, dict]) -> None:
        """Feed review decisions into the following epochs.

        decisions: {sample_index: {"action": "relabel"|"accept"|"keep"|"drop", "new_label": int|None}}
        (the effective decision per sample, e.g. Store.current_decisions()). Replaces any
        decisions applied before: a sample missing from the dict reverts to its given label.
        """
        n = len(self.train)
        labels = np.asarray(self.train.labels, dtype=np.int64).copy()
        in_training = np.ones(n, dtype=bool)
        forced = np.zeros(n, dtype=bool)
        for idx, d in decisions.items():
            i = int(idx)
            if not 0 <= i < n:
                raise ValueError(f"decision for sample {i} is out of range 0..{n - 1}")
            action = d.get("action")
            if action == "drop":
                in_training[i] = False
            elif action in ("relabel", "accept"):
                new = d.get("new_label")
                if new is None or not 0 <= int(new) < self.num_classes:
                    raise ValueError(f"decision for sample {i} has no valid new label: {new!r}")
                labels[i] = int(new)
                forced[i] = True
            elif action == "keep":
                forced[i] = True
            else:
                raise ValueError(f"unknown review action {action!r} for sample {i}")
        if not in_training.any():
            raise ValueError("every sample is dropped; nothing is left to train on")
        self.split.labels, self.split.in_training, self.split.forced_clean = labels, in_training, forced

    def run(self) -> Iterator[EpochReport]:
        """Train epoch by epoch, yielding one EpochReport after each finished epoch."""
        self._emit("on_train_begin")
        stopped = False
        try:
            while self.state.epochs_done < self.state.total_epochs:
                epoch = self.state.epochs_done + 1
                phase = self._phase_for_next_epoch()
                self._emit("on_epoch_begin", epoch, phase)
                report = self._run_epoch(epoch, phase)
                if report is None:  # stopped mid-epoch
                    stopped = True
                    break
                self._after_epoch(report)
                self._save_checkpoint(report)
                self._emit("on_epoch_end", report)
                yield report
                if self._should_stop():
                    stopped = self.state.epochs_done < self.state.total_epochs
                    break
        finally:
            self._emit("on_train_end", stopped)

    # ---- epoch structure ----------------------------------------------------------------
    def _phase_for_next_epoch(self) -> str:
        if self.config.method == "ce":
            return "ce"
        return "selfmix" if self.state.warmup_finished else "warmup"

    def _run_epoch(self, epoch: int, phase: str) -> EpochReport | None:
        cfg = self.config
        seed_seq = [cfg.seed, epoch]
        np_rng = np.random.default_rng(seed_seq + [0])
        torch_seed = int(np.random.default_rng(seed_seq + [1]).integers(0, 2**62))
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        t0 = time.perf_counter()
        fallback = None
        train_sizes = (None, None)
        self._notices = []
        with torch.random.fork_rng(devices=devices):
            # Dropout masks differ between ranks; `gen` (data order) is the same on all.
            torch.manual_seed(torch_seed + self.dist.rank)
            gen = torch.Generator().manual_seed(torch_seed)
            if phase == "selfmix":
                result = self._train_selfmix_epoch(epoch, np_rng, gen)
                if result is None:
                    return None
                losses, n_seen, fallback, train_sizes = result
            else:
                result = self._train_ce_epoch(epoch, phase, gen)
                if result is None:
                    return None
                losses, n_seen = result
        if self.dist.enabled:  # each rank averaged its share of every batch: add them up
            keys = sorted(losses)  # (n_seen counts the global batches already)
            [summed] = self.dist.sum_arrays(np.array([losses[k] for k in keys], dtype=np.float64))
            losses = dict(zip(keys, summed.tolist()))
        t1 = time.perf_counter()
        scored = self._score(self.train.texts, embeddings=True)
        if scored is None:
            return None
        loss, probs = scored[0], scored[1]
        labels = self.split.labels
        mask = self.split.in_training
        sel = self._select(
            loss[mask] if not cfg.reference.softmax_before_ce else self._ref_loss(probs, labels)[mask],
            labels[mask],
            np.random.default_rng(seed_seq + [2]),
            fit_mask=~self.split.in_validation[mask],
        )
        t2 = time.perf_counter()
        report = self._build_report(epoch, phase, losses, n_seen, loss, probs, sel, fallback, train_sizes, t0, t1, t2)
        report.embeddings = scored[2] if len(scored) > 2 else None  # (N, H) float16: the Explore map
        return report

    def _select(self, loss: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                fit_mask: np.ndarray | None = None) -> Selection:
        """The GMM split of (M,) losses with their (M,) labels, fitted on the (M,) fit_mask
        (the trained samples; the held-out ones get the same mixture's posterior). Under
        distribution every rank holds all M losses, but the GMM is fitted once, on rank 0,
        and its result broadcast, so all ranks train on one split."""
        cfg = self.config
        sel = None
        if self.dist.is_main:
            sel = select(loss, labels, self.num_classes, cfg.selection, rng, use_variance=cfg.reference.variance_norm,
                         fit_mask=fit_mask)
        if not self.dist.enabled:
            return sel
        meta = self.dist.broadcast_json(
            {"gmm": sel.gmm.to_dict() if sel.gmm else None, "warnings": list(sel.warnings)} if sel else None
        )
        m = len(loss)
        norm_loss, clean_prob = self.dist.broadcast_arrays(
            sel.norm_loss.astype(np.float64) if sel else np.zeros(m), sel.clean_prob.astype(np.float64) if sel
            else np.zeros(m))
        return Selection(norm_loss=norm_loss, clean_prob=clean_prob, is_clean=clean_prob >= cfg.selection.tau,
                         gmm=GMMParams.from_dict(meta["gmm"]) if meta["gmm"] else None,
                         warnings=tuple(meta["warnings"]))

    def _should_stop(self) -> bool:
        """The stop flag; under distribution, true on every rank once any rank was asked to stop."""
        return self.dist.any(self.control.should_stop)

    def _ref_loss(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        # CE applied to softmax(logits): -log softmax(p)_y, the reference's double softmax.
        p = torch.from_numpy(probs.astype(np.float64))
        return per_sample_ce(torch.log(p.clamp_min(1e-12)), torch.from_numpy(labels), softmax_first=True).numpy()

    def _after_epoch(self, report: EpochReport) -> None:
        st, cfg = self.state, self.config
        st.epochs_done = report.epoch
        st.val_history.append([report.epoch, report.phase, report.val_accuracy, report.val_loss])
        if report.phase == "warmup":
            st.warmup_epochs_done += 1
            self._remember_warmup(report)
            scheduled_done = (
                st.warmup_samples_seen >= cfg.warmup_samples
                if cfg.warmup_samples is not None
                else st.warmup_epochs_done >= cfg.warmup_epochs
            )
            if scheduled_done:
                reason = self._warmup_extension_reason(report)
                if reason and st.extra_warmup_used < cfg.extra_warmup_epochs:
                    st.extra_warmup_used += 1
                    st.total_epochs += 1
                    report.warnings.append(
                        f"{reason}, so warm-up continues for one more epoch "
                        f"({st.extra_warmup_used} of at most {cfg.extra_warmup_epochs} extra)"
                    )
                else:
                    st.warmup_finished = True
        self.split.is_clean = report.clean_prob >= report.tau
        self.split.separation = report.gmm.separation if report.gmm else None
        if report.phase == "warmup" and st.warmup_finished:
            self._hand_over_from_best(report)
        accs = {e: acc for e, _, acc, *_ in st.val_history}
        # The plain maximum: the "within one standard error" variant (n_val given) picked
        # later epochs with worse flags on small slices (docs/BENCHMARKS.md, section trust).
        report.recommended_epoch, report.recommendation = recommend_epoch(accs)
        warning = collapse_warning(accs)
        if warning:
            report.warnings.append(warning)
        m = report.in_training
        report.warnings += prediction_warnings(report.predicted_label[m], report.given_label[m],
                                               report.is_label_issue[m], self.num_classes, report.phase)

    def _remember_warmup(self, report: EpochReport) -> None:
        """With validation.handover_from_best: keep a CPU copy of the weights, the optimizer
        state and the GMM split of the warm-up epoch with the best held-out accuracy so far
        (in memory: a run resumed mid-warm-up remembers from the resumed epoch on)."""
        if not self.config.validation.handover_from_best or report.val_accuracy is None:
            return
        best = self._best_warmup
        if best is not None and report.val_accuracy <= best["accuracy"]:
            return
        self._best_warmup = {
            "epoch": report.epoch, "accuracy": report.val_accuracy,
            "model": _cpu_copy(self.model.state_dict()),
            "optimizer": _cpu_copy(self.optimizer.state_dict()),
            "is_clean": report.clean_prob >= report.tau,
            "separation": report.gmm.separation if report.gmm else None,
        }

    def _hand_over_from_best(self, report: EpochReport) -> None:
        """At the hand-over, with validation.handover_from_best: when an earlier warm-up epoch
        had the better held-out accuracy (the extension went one epoch past the peak, and the
        model may have begun to fit the flipped labels in it), SelfMix starts from that
        epoch's weights, optimizer state and GMM split instead of the last epoch's."""
        best, self._best_warmup = self._best_warmup, None
        if best is None or best["epoch"] == report.epoch:
            return
        self.model.load_state_dict(best["model"])
        self.optimizer.load_state_dict(best["optimizer"])
        self.split.is_clean, self.split.separation = best["is_clean"], best["separation"]
        report.warnings.append(
            f"SelfMix starts from epoch {best['epoch']}'s weights and split: its held-out accuracy "
            f"({best['accuracy']:.1%}) was the warm-up's best, epoch {report.epoch}'s {report.val_accuracy:.1%}")

    def _warmup_extension_reason(self, report: EpochReport) -> str | None:
        """Why the warm-up should go on after a scheduled warm-up epoch, or None: the
        held-out accuracy against the given labels still improves
        (decision.warmup_should_continue). Without a held-out slice the warm-up keeps its
        scheduled length. (The GMM's separation was tried as the signal and did not
        predict the runs that failed: docs/BENCHMARKS.md.)
        """
        if report.val_accuracy is None:
            return None
        v = self.config.validation
        warm = [entry for entry in self.state.val_history if entry[1] == "warmup" and entry[2] is not None]
        losses = [entry[3] if len(entry) > 3 else None for entry in warm]  # (checkpoints before losses: none)
        reason = warmup_should_continue([entry[2] for entry in warm], majority_share(self.split.labels, self._val_mask()),
                                        report.n_val, v.min_gain, losses if v.use_loss and None not in losses else None,
                                        v.min_loss_drop)
        return f"{reason}: the model is still learning" if reason else None
        return (f"the held-out loss on the given labels still falls ({min(losses[:-1]):.3f} -> {losses[-1]:.3f}): "
                "the model is still learning")

    def _val_mask(self) -> np.ndarray:
        """(N,) the held-out samples that count: in the slice and not dropped."""
        return self.split.in_validation & self.split.in_training

    # ---- training loops -----------------------------------------------------------------
    def _train_ce_epoch(self, epoch: int, phase: str, gen: torch.Generator) -> tuple[dict, int] | None:
        cfg = self.config
        idx = np.flatnonzero(self.split.in_training & ~self.split.in_validation)
        order = idx[torch.randperm(len(idx), generator=gen).numpy()]
        if phase == "warmup" and cfg.warmup_samples is not None:
            remaining = cfg.warmup_samples - self.state.warmup_samples_seen
            order = order[: max(remaining, 0)]
        bs = cfg.batch_size
        batches = self._grouped(order, bs, gen, as_batches=True)
        steps = math.ceil(len(order) / bs) if batches is None else len(batches)
        total, seen = 0.0, 0
        # Provisional flags: only in the run's first epoch, a warm-up (or CE) epoch.
        provisional = provisional_steps(steps, cfg.speed.provisional_every) if epoch == 1 else set()
        done: list[np.ndarray] = []
        self.model.train()
        t0 = time.perf_counter()
        for step in range(steps):
            if self._should_stop():
                return None
            b = order[step * bs : (step + 1) * bs] if batches is None else batches[step]
            parts = self._optimise((b,), self._ce_losses)
            total += parts["ce"] * len(b)
            seen += len(b)
            done.append(b)
            if step + 1 in provisional and not self._provisional(epoch, (step + 1) / steps, np.concatenate(done), t0):
                return None
            self._progress(epoch, phase, step + 1, steps, seen, t0)
        if phase == "warmup":
            self.state.warmup_samples_seen += seen
        return {"ce": total / max(seen, 1)}, seen

    def _provisional(self, epoch: int, fraction: float, trained: np.ndarray, t0: float) -> bool:
        """Score the (M,) samples trained so far with dropout off, fit the GMM on them and
        emit on_provisional. No random number the training draws is used (the GMM has its
        own generator; no dropout runs), so the run goes on unchanged. False if stopped."""
        idx = np.sort(trained)
        labels = self.split.labels[idx]
        scored = self._score([self.train.texts[i] for i in idx], labels)
        self.model.train()
        if scored is None:
            return False
        loss, probs = scored
        sel = self._select(loss, labels, np.random.default_rng([self.config.seed, epoch, 5, len(idx)]))
        auroc = None
        if self.train.true_labels is not None:
            auroc = detection_metrics(sel.clean_prob, labels, np.asarray(self.train.true_labels)[idx],
                                      self.config.selection.tau).auroc
        self._emit("on_provisional", ProvisionalFlags(
            epoch=epoch, fraction=fraction, samples_seen=len(idx), index=idx, loss=loss, clean_prob=sel.clean_prob,
            predicted_label=probs.argmax(1), auroc=auroc, seconds=time.perf_counter() - t0))
        return True

    def _train_selfmix_epoch(self, epoch: int, rng: np.random.Generator, gen: torch.Generator):
        cfg = self.config
        sp = self.split
        if sp.is_clean is None:  # resumed into SelfMix without a selection: cannot happen via run()
            raise RuntimeError("SelfMix epoch without a selection; run a warm-up epoch first")
        trained = sp.in_training & ~sp.in_validation
        x_mask = trained & (sp.is_clean | sp.forced_clean)
        u_mask = trained & ~sp.is_clean & ~sp.forced_clean
        x_idx, u_idx = np.flatnonzero(x_mask), np.flatnonzero(u_mask)
        n_train = len(x_idx) + len(u_idx)
        fallback = None
        half = cfg.batch_size // 2
        bx, bu = half, cfg.batch_size - half
        if len(u_idx) == 0:
            fallback = "U is empty (no sample looked noisy): trained on X alone with mixup, without L_P and L_R"
            bx, bu = cfg.batch_size, 0
        elif len(x_idx) == 0:
            fallback = "X is empty (no sample looked clean): trained on U alone with its soft labels"
            bx, bu = 0, cfg.batch_size
        if cfg.fast.epoch_over_all:
            steps = math.ceil(n_train / cfg.batch_size)
        else:  # the authors' loop: one pass over X in batches of bx (over U when X is empty)
            steps = math.ceil(len(x_idx) / bx) if bx else math.ceil(len(u_idx) / bu)
        group = cfg.speed.group_selfmix  # else EmbMix's partners come from uniformly random batches
        x_stream = _Cycler(x_idx, gen, (lambda o: self._grouped(o, max(bx, 1), gen)) if group else None)
        u_stream = _Cycler(u_idx, gen, (lambda o: self._grouped(o, max(bu, 1), gen)) if group else None)
        # Mixup permutations: from `gen` in one process (as always); under distribution
        # from a generator of this rank's own, since the ranks' shares differ in size and
        # `gen` must draw the same global batches on every rank.
        mix_gen = gen if not self.dist.enabled else torch.Generator().manual_seed(
            int(np.random.default_rng([cfg.seed, epoch, 3, self.dist.rank]).integers(0, 2**62)))
        sums = {"mix": 0.0, "pseudo": 0.0, "rdrop": 0.0, "total": 0.0}
        seen = 0
        self.model.train()
        t0 = time.perf_counter()
        for step in range(steps):
            if self._should_stop():
                return None
            xb, ub = x_stream.take(bx), u_stream.take(bu)
            n_u = len(ub)  # the whole step's |u|, for L_R's sum over U under micro-batching
            parts = self._optimise((xb, ub), lambda x, u: self._selfmix_losses(x, u, rng, mix_gen, n_u))
            for k in sums:
                sums[k] += parts[k]
            seen += len(xb) + len(ub)
            self._progress(epoch, "selfmix", step + 1, steps, seen, t0)
        losses = {k: v / max(steps, 1) for k, v in sums.items()}
        return losses, seen, fallback, (len(x_idx), len(u_idx))

    def _ce_losses(self, b: np.ndarray) -> tuple[torch.Tensor, dict]:
        """Cross-entropy of the batch b (indices into the train set)."""
        enc = self._encode_train(b)
        y = self._to_device(torch.from_numpy(self.split.labels[b]))
        with self._autocast():
            logits = self.model(**enc)  # (B, K)
        loss = F.cross_entropy(logits.float(), y)
        return loss, {"ce": float(loss.detach())}

    def _selfmix_losses(self, xb: np.ndarray, ub: np.ndarray, rng: np.random.Generator,
                        gen: torch.Generator, n_u: int | None = None) -> tuple[torch.Tensor, dict]:
        """L_mix + lambda_p L_P + lambda_r L_R for labeled indices xb and unlabeled ub.

        n_u: the number of unlabeled samples in the whole step (default len(ub)); L_R is
        a sum over them (paper Eq. 16), so a micro-batch or a rank that holds part of
        them scales its mean by n_u and `_optimise` weights it by its share.
        """
        cfg, k = self.config, self.num_classes
        fast = cfg.fast
        nx, nu = len(xb), len(ub)
        n_u = nu if n_u is None else n_u
        targets_u = None
        if nu and not fast.soft_targets_from_rdrop:
            # The paper: "close dropout when making sample selection or inference"; the
            # authors' trainer predicts U's soft labels in eval mode before mixing.
            self.model.eval()
            with torch.no_grad(), self._autocast():
                p_eval = torch.softmax(self.model(**self._encode_train(ub)).float(), -1)  # (nu, K)
            self.model.train()
            targets_u = sharpen(p_eval, cfg.temperature)
        enc = self._encode_train(np.concatenate([xb, ub, ub]).astype(np.int64))
        with self._autocast():
            emb = self.model.embed(**enc)  # (nx + 2nu, H): x, u (pass 1), u (pass 2)
            emb_x, emb_u1, emb_u2 = emb[:nx], emb[nx : nx + nu], emb[nx + nu :]
            logits_u1 = self.model.classify(emb_u1)  # (nu, K)
            logits_u2 = self.model.classify(emb_u2)
        logits_u1, logits_u2 = logits_u1.float(), logits_u2.float()
        if targets_u is None:  # FastChoices.soft_targets_from_rdrop (or an empty u)
            with torch.no_grad():
                p_u = 0.5 * (torch.softmax(logits_u1, -1) + torch.softmax(logits_u2, -1))
                targets_u = sharpen(p_u, cfg.temperature)  # (nu, K) soft labels
        y_x = self._to_device(torch.from_numpy(self.split.labels[xb]))
        targets_x = F.one_hot(y_x, k).float()  # (nx, K)
        all_emb = torch.cat([emb_x, emb_u1]).float()  # (nx + nu, H)
        all_tgt = torch.cat([targets_x, targets_u])
        if cfg.mixup:
            lam = sample_mix_lambda(cfg.alpha, rng)
            perm = torch.randperm(all_emb.shape[0], generator=gen).to(self.device)
            mixed_emb, mixed_tgt = embmix(all_emb, all_tgt, lam, perm)
        else:  # ablation: no EmbMix, soft-target CE on the plain embeddings
            mixed_emb, mixed_tgt = all_emb, all_tgt
        with self._autocast():
            mixed_logits = self.model.classify(mixed_emb)
        l_mix = soft_cross_entropy(mixed_logits.float(), mixed_tgt)
        min_class = cfg.reference.min_class_pseudo
        if fast.single_pass_pseudo:
            l_p = pseudo_label_loss(logits_u1, min_class=min_class)
        else:  # the authors average L_P over the two dropout passes
            l_p = 0.5 * (pseudo_label_loss(logits_u1, min_class=min_class)
                         + pseudo_label_loss(logits_u2, min_class=min_class))
        l_r = rdrop_kl(logits_u1, logits_u2, reduction="mean")
        if not fast.kl_mean:
            l_r = l_r * n_u  # the sum over U of the step (exact when this call holds all of U)
        total = l_mix + cfg.loss.lambda_p * l_p + cfg.loss.lambda_r * l_r
        return total, {"mix": float(l_mix.detach()), "pseudo": float(l_p.detach()), "rdrop": float(l_r.detach()),
                       "total": float(total.detach())}

    def _optimise(self, parts: tuple[np.ndarray, ...], loss_fn) -> dict:
        """One optimisation step over the index arrays `parts` (e.g. (x, u)).

        The batch is split into `self._micro` micro-batches whose gradients accumulate,
        each weighted by its share of the samples, so the step matches the full batch.
        Under distribution `parts` is the global batch: this rank takes its share
        (`dist.shard`), weights it by its share of the GLOBAL batch, and the gradients
        are summed across ranks before the step.
        On CUDA out-of-memory the micro-batch is halved and the step retried (the
        effective batch stays the same); a notice goes into the epoch's warnings.
        Returns the loss components averaged over the micro-batches by sample share
        (this rank's part of the average under distribution; `_run_epoch` sums them).
        """
        n = sum(len(p) for p in parts)
        parts = tuple(self.dist.shard(p) for p in parts)
        n_local = sum(len(p) for p in parts)
        while True:
            try:
                self.optimizer.zero_grad(set_to_none=True)
                agg: dict[str, float] = {}
                for chunk in (_split_parts(parts, self._micro) if n_local else []):
                    share = sum(len(p) for p in chunk) / n
                    loss, comps = loss_fn(*chunk)
                    if not torch.isfinite(loss):
                        raise FloatingPointError("the training loss became NaN/inf; lower the learning rate")
                    (loss * share).backward()
                    for key, v in comps.items():
                        agg[key] = agg.get(key, 0.0) + v * share
                self.dist.sum_gradients(self.model.parameters())
                self.optimizer.step()
                return agg
            except torch.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if self._micro >= n_local:
                    raise
                self._micro = min(self._micro * 2, n_local)
                self._notices.append(
                    f"out of memory: split each batch into {self._micro} micro-batches of about "
                    f"{math.ceil(n_local / self._micro)} samples; gradient accumulation keeps the batch of {n}"
                )

    # ---- scoring / evaluation -----------------------------------------------------------
    def _score(self, texts: Sequence[str], labels: np.ndarray | None = None, embeddings: bool = False):
        """Dropout off. Returns (per-sample CE (N,), probabilities (N, K)) or None if stopped;
        with embeddings=True a third item, the pooled embeddings the head read ((N, H)
        float16), from the same forward pass.

        Texts are batched in order of length so that dynamic padding wastes little.
        Under distribution each rank scores every world_size-th text of that order and
        the rows are summed across ranks (each row comes from one rank), so every rank
        returns all N rows. The stop flag is then checked before and after the pass
        only: ranks may run different numbers of batches, and a check is a collective.
        With speed.fast_scoring the pass runs under torch.inference_mode() in order of
        token length (cached tokens with speed.cache_tokens); else under no_grad.
        """
        fast = self.config.speed.fast_scoring
        with torch.inference_mode() if fast else torch.no_grad():
            return self._score_pass(texts, labels, fast, embeddings)

    def _score_pass(self, texts: Sequence[str], labels: np.ndarray | None, fast: bool, embeddings: bool = False):
        labels = self.split.labels if labels is None else labels
        self.model.eval()
        n = len(texts)
        cache = self._token_cache(texts)
        lengths = cache.lengths if fast and cache is not None else [len(t) for t in texts]
        order = self.dist.shard(np.argsort(lengths, kind="stable"))
        probs = np.zeros((n, self.num_classes), dtype=np.float32)
        loss = np.zeros(n, dtype=np.float32)
        emb_out = None
        if self.dist.enabled and self._should_stop():
            return None
        start = 0
        while start < len(order):
            if not self.dist.enabled and self.control.should_stop:
                return None
            b = order[start : start + self._score_bs]
            enc = self._encode([texts[i] for i in b]) if cache is None else self._collate(cache, b)
            try:
                with self._autocast():
                    if embeddings and hasattr(self.model, "embed") and hasattr(self.model, "classify"):
                        emb = self.model.embed(**enc)
                        logits = self.model.classify(emb).float()
                    else:  # a model that is not a TextClassifier (tests, baselines): no embeddings
                        emb, logits = None, self.model(**enc).float()
            except torch.OutOfMemoryError:
                if self._score_bs == 1:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self._score_bs = max(1, self._score_bs // 2)
                self._notices.append(f"out of memory while scoring: scoring batch halved to {self._score_bs}")
                continue
            start += len(b)
            y = self._to_device(torch.from_numpy(np.asarray(labels)[b]))
            loss[b] = per_sample_ce(logits, y).cpu().numpy()
            probs[b] = torch.softmax(logits, -1).cpu().numpy()
            if emb is not None:
                if emb_out is None:
                    emb_out = np.zeros((n, emb.shape[-1]), dtype=np.float16)
                emb_out[b] = emb.float().cpu().numpy()
        if self.dist.enabled:
            loss, probs = self.dist.sum_arrays(loss, probs)
            if embeddings and hasattr(self.model, "head"):  # a rank with no batch: zeros of the head's width
                if emb_out is None:
                    emb_out = np.zeros((n, self.model.head[0].in_features), dtype=np.float16)
                [emb_out] = self.dist.sum_arrays(emb_out.astype(np.float32))
                emb_out = emb_out.astype(np.float16)
            if self._should_stop():
                return None
        if embeddings:
            return loss, probs, emb_out
        return loss, probs

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, K) class probabilities with dropout off."""
        out = self._score(texts, labels=np.zeros(len(texts), dtype=np.int64))
        if out is None:
            raise RuntimeError("stopped")
        return out[1]

    def _build_report(self, epoch, phase, losses, n_seen, loss, probs, sel: Selection, fallback, train_sizes,
                      t0, t1, t2) -> EpochReport:
        cfg, k = self.config, self.num_classes
        mask = self.split.in_training
        labels = self.split.labels
        n = len(labels)
        clean_prob = np.full(n, np.nan, dtype=np.float64)
        clean_prob[mask] = sel.clean_prob
        norm = np.full(n, np.nan, dtype=np.float64)
        norm[mask] = sel.norm_loss
        pred = probs.argmax(1)
        top3_label, top3_prob = top_k(probs)
        report = EpochReport(
            epoch=epoch,
            phase=phase,
            seconds=0.0,
            train_seconds=t1 - t0,
            score_seconds=t2 - t1,
            samples_trained=int(n_seen),
            losses=losses,
            given_label=labels.copy(),
            loss=loss,
            norm_loss=norm,
            clean_prob=clean_prob,
            predicted_label=pred,
            predicted_prob=probs.max(1),
            in_training=mask.copy(),
            gmm=sel.gmm,
            tau=cfg.selection.tau,
            n_clean=int(sel.is_clean.sum()),
            n_noisy=int((~sel.is_clean).sum()),
            train_n_clean=train_sizes[0],
            train_n_noisy=train_sizes[1],
            given_vs_predicted=confusion_counts(labels[mask], pred[mask], k),
            warnings=list(sel.warnings) + self._notices,
            fallback=fallback,
            in_validation=self.split.in_validation.copy(),
            top3_label=top3_label,
            top3_prob=top3_prob,
        )
        held = held_out_metrics(pred, loss, labels, self._val_mask())
        if held is not None:
            report.val_accuracy, report.val_loss, report.n_val = held.accuracy, held.loss, held.n
        true = self.train.true_labels
        if true is not None:
            true = np.asarray(true, dtype=np.int64)
            report.given_vs_true = confusion_counts(labels[mask], true[mask], k)
            report.detection = detection_metrics(clean_prob, labels, true, cfg.selection.tau, mask=mask)
            report.train_accuracy_true = accuracy(true, pred)
        if self.test is not None:
            texts, y = self._test_texts(last=epoch >= self.state.total_epochs)
            out = self._score(texts, labels=y)
            if out is not None:
                test_pred = out[1].argmax(1)
                report.test_accuracy = accuracy(y, test_pred)
                report.test_macro_f1 = macro_f1(y, test_pred, k)
                report.n_test, report.test_sampled = len(y), len(y) < len(self.test)
        report.seconds = time.perf_counter() - t0
        return report

    # ---- helpers -------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.config.model.max_length, return_tensors="pt"
        )
        return {
            "input_ids": self._to_device(enc["input_ids"]),
            "attention_mask": self._to_device(enc["attention_mask"]),
        }

    def _encode_train(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """(B,) indices into the train set -> the encoded batch (cached tokens when on)."""
        cache = self._token_cache(self.train.texts)
        if cache is None:
            return self._encode([self.train.texts[i] for i in idx])
        return self._collate(cache, idx)

    def _collate(self, cache: TokenCache, idx: np.ndarray) -> dict[str, torch.Tensor]:
        enc = cache.collate(idx)
        return {k: self._to_device(v) for k, v in enc.items()}

    def _token_cache(self, texts: Sequence[str]) -> TokenCache | None:
        """The TokenCache of the train texts, the test texts or the test sample (made on
        first use); None for other texts, with speed.cache_tokens off, or when too large."""
        for owner, cache in self._caches:
            if owner is texts:
                return cache
        known = [self.train.texts] + ([self.test.texts] if self.test is not None else [])
        if self._test_eval is not None:
            known.append(self._test_eval[1])
        if not self.config.speed.cache_tokens or not any(texts is t for t in known):
            return None
        max_length = self.config.model.max_length
        cache = TokenCache(self.tokenizer, texts, max_length) if token_cache_fits(len(texts), max_length) else None
        self._caches.append((texts, cache))
        return cache

    def _grouped(self, order: np.ndarray, batch_size: int, gen: torch.Generator, as_batches: bool = False):
        """With speed.group_by_length: `order` regrouped by token length (speed.grouped_batches;
        a list of batches with as_batches, else the flat order); without: None / `order`.
        Without cached tokens (too many texts, or cache_tokens off) the lengths are in characters."""
        sp = self.config.speed
        if not sp.group_by_length:
            return None if as_batches else order
        cache = self._token_cache(self.train.texts)
        lengths = cache.lengths if cache is not None else np.array([len(t) for t in self.train.texts])
        fn = grouped_batches if as_batches else grouped_order
        return fn(order, lengths, batch_size, sp.group_chunk, gen)

    def _test_texts(self, last: bool) -> tuple[Sequence[str], np.ndarray]:
        """The test texts and (M,) labels to evaluate: the whole test set at the last
        epoch or when it holds at most speed.test_sample texts; otherwise a stratified
        sample of that many, fixed for the run by its seed."""
        y = np.asarray(self.test.labels, dtype=np.int64)
        n = self.config.speed.test_sample
        if last or n == 0 or len(y) <= n:
            return self.test.texts, y
        if self._test_eval is None:
            idx = stratified_sample(y, n, np.random.default_rng([self.config.seed, 11]))
            self._test_eval = (idx, [self.test.texts[i] for i in idx])
        idx, texts = self._test_eval
        return texts, y[idx]

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self._amp)

    def _progress(self, epoch: int, phase: str, step: int, steps: int, seen: int, t0: float) -> None:
        if self.callbacks:
            self._emit("on_step_end", StepProgress(epoch, phase, step, steps, seen, time.perf_counter() - t0))

    def _emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # ---- checkpoints -------------------------------------------------------------------------
    def _save_checkpoint(self, report: EpochReport) -> None:
        """Write epoch-NNN/ (weights, optimizer, state, split), then point latest.json at it."""
        if self.checkpoint_dir is None:
            return
        if not self.dist.is_main:  # rank 0 writes; the others wait until it is complete
            self.dist.barrier()
            return
        from .atomic import atomic_write_text, fsync_folder

        root = self.checkpoint_dir
        folder = root / f"epoch-{report.epoch:03d}"
        tmp = root / f".epoch-{report.epoch:03d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(tmp)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        np.savez(
            tmp / "split.npz",
            labels=self.split.labels,
            in_training=self.split.in_training,
            forced_clean=self.split.forced_clean,
            is_clean=self.split.is_clean if self.split.is_clean is not None else np.zeros(0, dtype=bool),
        )
        meta = {
            "format": CHECKPOINT_FORMAT,
            "state": self.state.to_dict(),
            "separation": self.split.separation,
            "config": self.config.to_dict(),
            "label_names": list(self.train.label_names),
            "n_train": len(self.train),
            "data_fingerprint": self._data_fingerprint(),
        }
        (tmp / "state.json").write_text(json.dumps(meta, indent=2))
        # The report travels with its checkpoint, so a consumer killed between the two
        # can still record this epoch after resuming (see `resumed_report`).
        (tmp / "report.json").write_text(json.dumps(report.scalars_dict()))
        (tmp / "report.npz").write_bytes(report.arrays_bytes())
        fsync_folder(tmp)  # the files' data is on disk before the folder gets its real name
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        fsync_folder(root, recursive=False)  # ...and the rename itself is
        atomic_write_text(root / "latest.json", json.dumps({"epoch": report.epoch, "folder": folder.name}))
        for old in root.glob("epoch-*"):
            if old.name != folder.name:
                shutil.rmtree(old, ignore_errors=True)
        self.dist.barrier()

    def _data_fingerprint(self) -> str:
        """SHA-256 of the training texts and their given labels (before review decisions,
        which the checkpoint's split.npz carries): resuming on other data is refused.
        Cached; about 0.1 s per million texts."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256()
            h.update(np.asarray(self.train.labels, dtype=np.int64).tobytes())
            for text in self.train.texts:
                b = str(text).encode("utf-8", "surrogatepass")
                h.update(len(b).to_bytes(8, "little"))
                h.update(b)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _load_checkpoint(self) -> None:
        root = self.checkpoint_dir
        try:
            latest = json.loads((root / "latest.json").read_text())
            folder = root / latest["folder"]
            meta = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"checkpoint in {root} is unreadable ({exc}); start a new run") from exc
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {meta.get('format')} is not supported by this version")
        if (meta["n_train"] != len(self.train) or meta["label_names"] != list(self.train.label_names)
                or meta.get("data_fingerprint", self._data_fingerprint()) != self._data_fingerprint()):
            raise ValueError(
                "the checkpoint was made on different training data (other texts or given labels); "
                "resume with the same data and settings, or start a new run in another folder"
            )
        saved = dict(meta["config"])
        saved.setdefault("speed", dataclasses.asdict(SpeedConfig.off()))  # saved before SpeedConfig
        changed = _changed_settings(saved, self.config.to_dict())
        if changed:
            raise ValueError(
                "the checkpoint was made with other settings (" + "; ".join(changed) + "); resume with the same "
                "settings, or start a new run in another folder"
            )
        try:
            self.model.load_weights(folder)
            # weights_only: a tampered optimizer.pt cannot run code; it fails to load instead.
            opt_state = torch.load(folder / "optimizer.pt", map_location=self.device, weights_only=True)
            self.optimizer.load_state_dict(opt_state)
            with np.load(folder / "split.npz", allow_pickle=False) as z:
                self.split.labels = z["labels"].astype(np.int64)
                self.split.in_training = z["in_training"].astype(bool)
                self.split.forced_clean = z["forced_clean"].astype(bool)
                is_clean = z["is_clean"].astype(bool)
                self.split.is_clean = is_clean if is_clean.size == len(self.train) else None
            if (folder / "report.json").is_file():
                self.resumed_report = EpochReport.from_parts(
                    json.loads((folder / "report.json").read_text()), (folder / "report.npz").read_bytes()
                )
        except Exception as exc:  # torch, numpy and pickle raise many types for a damaged file
            if isinstance(exc, pickle.UnpicklingError) or "pickled" in str(exc):
                detail = "it holds pickled Python objects, which are refused because loading them could run code"
            else:
                detail = f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:160]
            raise ValueError(
                f"checkpoint {folder} is damaged or not a SelfMix checkpoint ({detail}); "
                "start a new run, or delete that checkpoint folder"
            ) from exc
        self.split.separation = meta.get("separation")
        self.state = TrainerState(**meta["state"])
        # More (or fewer) epochs may be asked for on resume; extra warm-up epochs stay added.
        self.state.total_epochs = max(self.config.epochs + self.state.extra_warmup_used, self.state.epochs_done)


# Settings that may change between a checkpoint and its resumption.
_RESUMABLE_CHANGES = {"epochs", "device", "score_batch_size"}


def _changed_settings(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two TrainConfig dicts, ignoring _RESUMABLE_CHANGES."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if not prefix and key in _RESUMABLE_CHANGES:
            continue
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_settings(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return out


def _split_parts(parts: tuple[np.ndarray, ...], m: int) -> list[tuple[np.ndarray, ...]]:
    """Split each index array into m nearly equal pieces; zip them; drop empty chunks."""
    if m == 1:
        return [parts]
    pieces = [np.array_split(p, m) for p in parts]
    chunks = [tuple(pc[i] for pc in pieces) for i in range(m)]
    return [c for c in chunks if sum(len(p) for p in c) > 0]


def _cpu_copy(obj):
    """A deep copy of a (nested) state dict with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


class _Cycler:
    """Endless shuffled stream over an index array; reshuffles at each wrap.
    arrange: optional function of each shuffled pass (e.g. grouping it by length)."""

    def __init__(self, idx: np.ndarray, gen: torch.Generator, arrange=None):
        self.idx, self.gen, self.arrange = idx, gen, arrange
        self.order = self._shuffle()
        self.pos = 0

    def _shuffle(self) -> np.ndarray:
        if not len(self.idx):
            return self.idx
        order = self.idx[torch.randperm(len(self.idx), generator=self.gen).numpy()]
        return self.arrange(order) if self.arrange is not None else order

    def take(self, n: int) -> np.ndarray:
        if n == 0 or len(self.idx) == 0:
            return self.idx[:0]
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order, self.pos = self._shuffle(), 0
            chunk = self.order[self.pos : self.pos + n]
            out.append(chunk)
            self.pos += len(chunk)
            n -= len(chunk)
        return np.concatenate(out)
