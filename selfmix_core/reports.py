"""The typed events the trainer emits. The CLI prints them, the store saves them,
the pages draw them and the tests check them.

`EpochReport` is the one object everything passes around. Per-sample arrays are
indexed by the sample's position in the training `TextDataset` (0..N-1) and
have shape (N,) (top3_label / top3_prob: (N, 3)). Score direction: `clean_prob` is the posterior of the low-loss GMM
component, so LOWER = MORE LIKELY MISLABELED; `label_score` (the name users of
label-error tools know) is the model's probability of the given label, lower = more
likely mislabeled too, with a spread the saturating posterior lacks.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GMMParams:
    """The 1-D two-component GMM fitted on the (normalised) per-sample losses.

    means, stds, weights: per component, in sklearn's component order.
    clean_component: index of the component with the smaller mean.
    converged: whether EM converged within gmm_max_iter.
    separation: |mu_1 - mu_0| / sqrt((s_0^2 + s_1^2) / 2) (Ashman's D); > 2 means two
        clearly distinct components, < 1 means the split is mostly noise.
    """

    means: tuple[float, float]
    stds: tuple[float, float]
    weights: tuple[float, float]
    clean_component: int
    converged: bool
    n_iter: int
    separation: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GMMParams":
        return cls(
            means=tuple(d["means"]),
            stds=tuple(d["stds"]),
            weights=tuple(d["weights"]),
            clean_component=int(d["clean_component"]),
            converged=bool(d["converged"]),
            n_iter=int(d["n_iter"]),
            separation=float(d["separation"]),
        )


@dataclass(frozen=True)
class DetectionMetrics:
    """How well `clean_prob < tau` finds the real flips (needs true labels).

    auroc: area under the ROC of (1 - clean_prob) against is_flipped; 0.5 = chance.
    precision, recall, f1: of the flagged set {clean_prob < tau} against the flips.
    """

    precision: float
    recall: float
    f1: float
    auroc: float | None
    n_flagged: int
    n_noisy: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StepProgress:
    """Emitted to callbacks after each optimisation step (for progress bars/ETA)."""

    epoch: int
    phase: str
    step: int
    steps_in_epoch: int
    samples_seen: int
    seconds: float


# Array fields of EpochReport, with dtypes used when they are serialised.
ARRAY_FIELDS: dict[str, str] = {
    "given_label": "int32",
    "loss": "float32",
    "norm_loss": "float32",
    "clean_prob": "float32",
    "predicted_label": "int32",
    "predicted_prob": "float32",
    "in_training": "bool",
    "in_validation": "bool",
    "top3_label": "int32",
    "top3_prob": "float32",
}
# Arrays that reports saved before they existed lack: filled with this value on load
# (top3_*: shape (N, 3); label -1 / probability NaN = unknown).
_ARRAY_DEFAULTS = {"in_validation": False, "top3_label": -1, "top3_prob": np.nan}
_ARRAY_WIDTH = {"top3_label": 3, "top3_prob": 3}
TOP_K = 3
# Fields saved apart from the scalars and the .npz (large; not every epoch keeps them).
_SEPARATE_FIELDS = ("embeddings",)


def top_k(probs: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable classes of each row of (N, K) class probabilities, most
    probable first: ((N, k) int class ids, (N, k) their probabilities). With K < k the
    missing places are -1 / NaN. Ties: the lower class id first."""
    p = np.asarray(probs, dtype=np.float64)
    n, kk = p.shape
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    labels = np.full((n, k), -1, dtype=np.int64)
    top = np.full((n, k), np.nan, dtype=np.float64)
    w = min(k, kk)
    labels[:, :w] = order[:, :w]
    top[:, :w] = np.take_along_axis(p, order[:, :w], axis=1)
    return labels, top


@dataclass
class EpochReport:
    """Everything one epoch produced.

    epoch: 1-based. phase: "warmup" or "selfmix" (the phase this epoch trained in).
    losses: mean training loss components of the epoch: {"ce"} in warm-up and for
        method="ce"; {"mix", "pseudo", "rdrop", "total"} in SelfMix epochs.
    Per-sample arrays, shape (N,), computed after this epoch's training with dropout
    off; they are also the selection that the NEXT epoch trains with:
        given_label: the label the model was trained against (after review decisions).
        loss: per-sample cross-entropy; norm_loss: after normalisation (min-max or
        class-regularised); clean_prob: GMM posterior of the low-loss component
        (lower = more likely mislabeled); predicted_label / predicted_prob: the model's
        argmax and its softmax probability; in_training: False for dropped samples.
    n_clean / n_noisy: |X| and |U| of that selection (dropped samples excluded).
    train_n_clean / train_n_noisy: |X| and |U| this epoch actually trained on
        (None in warm-up / CE epochs).
    given_vs_predicted: (K, K) counts, rows given label, columns predicted label (a
        confusion matrix against the given labels). Row-normalised it is
        P(predicted | given), NOT the noise transition T[true, noisy] (rows true label,
        columns noisy label): its rows are the given labels, and it mixes the noise with
        the model's own errors and with what it memorised.
    given_vs_true: (K, K) counts, rows given, columns true label; None without true labels.
        Row-normalised it is P(true | given); the realised T[true, noisy] is its
        transpose, row-normalised.
    in_validation: (N,) bool, the held-out slice (decision.py): never trained on,
        scored every epoch, flagged by the GMM fitted on the trained samples.
    val_accuracy / val_loss / n_val: accuracy and mean CE of the held-out slice against
        its GIVEN labels (None without a slice): the label-free signal.
    top3_label / top3_prob: (N, 3) the model's three most probable classes and their
        probabilities, most probable first (column 0 = predicted_label / predicted_prob);
        -1 / NaN in reports saved before they existed, or with fewer than 3 classes.
    recommended_epoch / recommendation: the epoch whose flags are recommended so far
        (this one or an earlier one) and why, in one sentence.
    test_accuracy / test_macro_f1: on n_test test texts; test_sampled: True when those
        were the fixed stratified sample of SpeedConfig.test_sample (the last epoch uses
        the whole test set).
    fallback: set when X or U came out empty (or too small) and the epoch trained
        another way; the text says how.
    embeddings: (N, H) float16, the pooled sentence embeddings the classifier head read
        in this epoch's scoring pass (dropout off), or None. Not part of scalars_dict()
        or arrays_bytes(): the store keeps them apart (Store.save_embeddings), for the
        recommended and the last epoch only.
    """

    epoch: int
    phase: str
    seconds: float
    train_seconds: float
    score_seconds: float
    samples_trained: int
    losses: dict[str, float]
    given_label: np.ndarray
    loss: np.ndarray
    norm_loss: np.ndarray
    clean_prob: np.ndarray
    predicted_label: np.ndarray
    predicted_prob: np.ndarray
    in_training: np.ndarray
    gmm: GMMParams | None
    tau: float
    n_clean: int
    n_noisy: int
    train_n_clean: int | None = None
    train_n_noisy: int | None = None
    test_accuracy: float | None = None
    test_macro_f1: float | None = None
    n_test: int | None = None
    test_sampled: bool = False
    train_accuracy_true: float | None = None
    detection: DetectionMetrics | None = None
    given_vs_predicted: np.ndarray | None = None
    given_vs_true: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    fallback: str | None = None
    in_validation: np.ndarray | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    n_val: int = 0
    recommended_epoch: int | None = None
    recommendation: str | None = None
    top3_label: np.ndarray | None = None
    top3_prob: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.clean_prob)
        if self.in_validation is None:
            self.in_validation = np.zeros(n, dtype=bool)
        if self.top3_label is None:
            self.top3_label = np.full((n, TOP_K), -1, dtype=np.int64)
        if self.top3_prob is None:
            self.top3_prob = np.full((n, TOP_K), np.nan, dtype=np.float64)

    # ---- derived views ------------------------------------------------------------------
    @property
    def is_label_issue(self) -> np.ndarray:
        """(N,) bool: flagged as probably mislabeled (clean_prob < tau, still in training)."""
        return (self.clean_prob < self.tau) & self.in_training

    @property
    def label_score(self) -> np.ndarray:
        """(N,) float in [0, 1]: the model's probability of the given label, exp(-loss);
        lower = more likely mislabeled. Unlike clean_prob (a GMM posterior, which saturates
        at 0 for most flagged samples) it keeps its spread, so it orders a review. NaN for
        dropped samples, as clean_prob."""
        with np.errstate(over="ignore", invalid="ignore"):
            score = np.exp(-np.clip(np.asarray(self.loss, dtype=np.float64), 0.0, None))
        return np.where(self.in_training, score, np.nan)

    # ---- serialisation ----------------------------------------------------------------
    def scalars_dict(self) -> dict[str, Any]:
        """JSON-safe dict of everything except the per-sample arrays."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ARRAY_FIELDS or f.name in _SEPARATE_FIELDS:
                continue
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, (GMMParams, DetectionMetrics)):
                v = v.to_dict()
            out[f.name] = v
        return out

    def arrays_bytes(self) -> bytes:
        """The per-sample arrays as one compressed .npz blob (about 30 bytes/sample, half of it the top-3)."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf, **{k: np.asarray(getattr(self, k)).astype(dt) for k, dt in ARRAY_FIELDS.items()}
        )
        return buf.getvalue()

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], arrays: bytes) -> "EpochReport":
        with np.load(io.BytesIO(arrays), allow_pickle=False) as npz:
            n = len(npz["clean_prob"])
            arr = {k: npz[k] if k in npz.files
                   else np.full((n, _ARRAY_WIDTH[k]) if k in _ARRAY_WIDTH else n, _ARRAY_DEFAULTS[k])
                   for k in ARRAY_FIELDS}
        s = dict(scalars)
        s["gmm"] = GMMParams.from_dict(s["gmm"]) if s.get("gmm") else None
        s["detection"] = DetectionMetrics(**s["detection"]) if s.get("detection") else None
        for key in ("given_vs_predicted", "given_vs_true"):
            if s.get(key) is not None:
                s[key] = np.asarray(s[key], dtype=np.int64)
        known = {f.name for f in dataclasses.fields(cls)}
        s = {k: v for k, v in s.items() if k in known}
        return cls(**s, **arr)
