"""Confident Learning (Northcutt et al. 2021) through the cleanlab library.

1. K-fold cross-validation (stratified; option `cv_folds`, default 5, cleanlab's default
   and what the SelfMix authors' script ran): for each fold a fresh model is fine-tuned
   with cross-entropy on the other folds for `cv_epochs` epochs (default 3, the authors'
   cv_epoch) and predicts the held-out fold: out-of-sample probabilities pred_probs (N, K).
2. cleanlab.filter.find_label_issues(labels, pred_probs) (prune_by_noise_rate) flags
   the label issues; cleanlab.rank.get_label_quality_scores (self-confidence) ranks them.
3. A fresh model is fine-tuned with cross-entropy for `epochs` epochs on the samples
   that were not flagged; its test accuracy is reported each epoch.

Flags: cleanlab's issues. `clean_prob` orders samples by label quality score inside the
flagged and the kept group (see `ranked_clean_prob`). `extras` records the CV wall
time, the issue count and, with true labels, the AUROC of the raw quality scores and
the precision/recall/F1 of the flagged set (the detection head-to-head).
The paper does not state its fold count or CV epochs; the defaults are those of the
authors' baseline script (baselines/train_cl.py: cleanlab's LearningWithNoisyLabels at
its default 5 folds, cv_epoch=3).
"""

from __future__ import annotations

import time

import numpy as np

from ...metrics import detection_metrics
from ...trainer import SelfMixTrainer
from .base import BaselineTrainer, Method, derive_seed, method_selection

# The SelfMix authors' settings (baselines/train_cl.py): cleanlab's default 5 folds, 3 CV epochs.
CV_FOLDS, CV_EPOCHS = 5, 3


class _FoldTrainer(SelfMixTrainer):
    """CE fine-tuning of one CV fold. Skips the per-epoch scoring pass over its own training
    texts (nobody reads those reports; it would cost about a third of each epoch)."""

    def _score(self, texts, labels=None, embeddings=False):
        if texts is self.train.texts:
            n = len(texts)
            return np.zeros(n, dtype=np.float32), np.full((n, self.num_classes), 1.0 / self.num_classes, np.float32)
        return super()._score(texts, labels, embeddings=embeddings)


def cross_val_pred_probs(train, config, model_factory, tokenizer, folds: int, epochs: int, control=None) -> np.ndarray:
    """(N, K) out-of-fold predicted probabilities from `folds` CE fine-tunings of `epochs` epochs."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if epochs < 1:
        raise ValueError(f"cv_epochs must be >= 1, got {epochs}")
    labels = np.asarray(train.labels)
    if np.bincount(labels).max() < folds:
        raise ValueError(f"{folds}-fold cross-validation needs a class with at least {folds} samples")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=derive_seed(config.seed, 2))
    # classes smaller than the fold count only trigger a warning in sklearn; folds stay valid
    probs = np.zeros((len(train), train.num_classes), dtype=np.float64)
    cfg = config.replace(method="ce", epochs=epochs)
    for fold, (fit_idx, held_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        model = model_factory(train.num_classes, derive_seed(config.seed, 3, fold))
        trainer = _FoldTrainer(cfg.replace(seed=derive_seed(config.seed, 4, fold)), train.subset(fit_idx),
                                 None, model=model, tokenizer=tokenizer, control=control)
        for _ in trainer.run():
            pass
        if control is not None and control.should_stop:
            raise RuntimeError("stopped during cross-validation")
        probs[held_idx] = trainer.predict_proba([train.texts[i] for i in held_idx])
    return probs


class KeepTrainer(BaselineTrainer):
    """CE on the kept samples only; reports the fixed cleanlab verdict as its flags."""

    phase_name = "cl"

    def __init__(self, *args, keep: np.ndarray, suspicion: np.ndarray, **kw):
        super().__init__(*args, **kw)
        self.keep, self.suspicion = np.asarray(keep, bool), np.asarray(suspicion, float)

    def _train_ce_epoch(self, epoch, phase, gen):
        # Train on in_training & keep; every sample stays in the reports (scored, flagged or not).
        saved = self.split.in_training
        self.split.in_training = saved & self.keep
        try:
            return super()._train_ce_epoch(epoch, phase, gen)
        finally:
            self.split.in_training = saved

    def _method_selection(self, loss, probs, labels, index):
        return method_selection(self.suspicion[index], ~self.keep[index], self.config.selection.tau)


class ConfidentLearning(Method):
    name = "cl"
    summary = "cleanlab find_label_issues on K-fold CV probabilities, then CE on the kept samples"
    paper = "Northcutt et al. 2021 (Confident Learning; cleanlab)"
    flags = "cleanlab.filter.find_label_issues on K-fold CV probabilities"

    @classmethod
    def departs_from_authors(cls, cell):
        ex = cell.get("extras", {})
        folds, epochs = ex.get("cv_folds"), ex.get("cv_epochs")
        if (folds, epochs) != (CV_FOLDS, CV_EPOCHS):
            return (f"{folds} folds x {epochs} CV epochs (cleanlab's default {CV_FOLDS} folds, "
                    f"the authors' {CV_EPOCHS} epochs)")
        return None

    def run(self, train, test, config, model_factory, tokenizer, callbacks=(), control=None, noise_rate=None):
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        folds = int(self.options.get("cv_folds", CV_FOLDS))
        cv_epochs = int(self.options.get("cv_epochs", CV_EPOCHS))
        t0 = time.perf_counter()
        pred_probs = cross_val_pred_probs(train, config, model_factory, tokenizer, folds, cv_epochs, control)
        t1 = time.perf_counter()
        labels = np.asarray(train.labels, dtype=np.int64)
        issues = find_label_issues(labels, pred_probs)  # (N,) bool
        quality = get_label_quality_scores(labels, pred_probs)  # (N,) in [0, 1], lower = worse
        t2 = time.perf_counter()
        self.extras = {"cv_folds": folds, "cv_epochs": cv_epochs, "cv_seconds": t1 - t0, "cleanlab_seconds": t2 - t1,
                       "n_issues": int(issues.sum()), "n_train": len(train)}
        if train.true_labels is not None:
            true = np.asarray(train.true_labels)
            flags = detection_metrics(np.where(issues, 0.0, 1.0), labels, true, 0.5)
            ranks = detection_metrics(quality, labels, true, 0.5)
            self.extras.update({"quality_auroc": ranks.auroc, "flag_precision": flags.precision,
                                "flag_recall": flags.recall, "flag_f1": flags.f1,
                                "cv_accuracy_true": float((pred_probs.argmax(1) == true).mean())})
        if issues.all():
            raise ValueError("cleanlab flagged every training sample; nothing is left to train on")
        trainer = self._trainer(KeepTrainer, config, train, test, model_factory, tokenizer, callbacks, control,
                                keep=~issues, suspicion=1.0 - quality)
        yield from trainer.run()
