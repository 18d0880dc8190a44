"""Inject synthetic label noise into clean labels, so a detector can be scored.

This module's one job: given clean labels y (N,) over K classes, produce noisy labels
with an EXACT, known amount of noise, and report what was realised. Evaluating on a
clean dataset is then: `noisy_dataset(ds, ...)` -> train on its (noisy) `labels`,
score against its `true_labels` (the original clean labels).

Kinds (the SelfMix paper's settings):

- "none": labels unchanged.
- "sym": exactly round(rate * N) samples, chosen uniformly, each flipped to a
  uniformly chosen OTHER class.
- "asym": the paper's y -> (y + 1) mod K. Exactly round(rate * N) flips in all,
  shared between classes in proportion to class size (largest-remainder rounding,
  so per-class counts and the total are exact). With a user `transition` matrix T
  (K, K) instead, class i sends round(T[i, j] * n_i) of its n_i samples to class j
  (largest remainder per row) and `rate` is ignored.
- "idn": instance-dependent noise after Algan & Ulusoy, as the SelfMix paper does: a
  small classifier (logistic regression) trained on a small clean stratified subset
  predicts every sample; the round(rate * N) samples closest to its decision boundary
  (smallest margin p[given] - max p[other]) are flipped to their most likely OTHER
  class. So the wrong labels are the plausible ones, as in real annotation errors.

round() is Python's round (half to even). Every random choice comes from the
`numpy.random.Generator` passed in: the same seed gives the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from selfmix_core.data import TextDataset

NOISE_KINDS = ("none", "sym", "asym", "idn")
_EXAMPLE_ROWS = 8


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """The result of `inject_noise`.

    noisy: (N,) int64 the new given labels.
    flipped: (N,) bool, noisy != original.
    transition: (K, K) float, realised T[true, noisy] = counts row-normalised; every
        row sums to 1 (a class with no samples gets the identity row).
    counts: (K, K) int64, realised counts[true, noisy].
    rate: realised fraction of samples flipped.
    """

    noisy: np.ndarray
    flipped: np.ndarray
    transition: np.ndarray
    counts: np.ndarray
    rate: float

    @property
    def n_flipped(self) -> int:
        return int(self.flipped.sum())


# ---- public API --------------------------------------------------------------------


def inject_noise(
    labels: Any,
    kind: str,
    rate: float | None,
    rng: np.random.Generator,
    num_classes: int | None = None,
    transition: Any = None,
    features: Any = None,
    clean_fraction: float = 0.1,
) -> NoisyLabels:
    """Flip labels (N,) int ids in 0..K-1 according to `kind` (see the module docstring).

    rate: fraction of samples to flip, in [0, 1); ignored (may be None) for "none" and
        for "asym" with a `transition`.
    rng: the only source of randomness.
    num_classes: K; None = labels.max() + 1.
    transition: (K, K) rows summing to 1, only with kind="asym": T[i, j] = share of
        class i relabeled j (the diagonal is the share kept).
    features: (N, D) dense array or scipy sparse matrix, required by "idn" only.
    clean_fraction: share of each class (at least 2 samples where the class has them)
        that trains the "idn" classifier.
    """
    y, k = _check_labels(labels, num_classes)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    if transition is not None and kind != "asym":
        raise ValueError(f"transition is only used with kind='asym', got kind={kind!r}")
    rate_ignored = kind == "none" or transition is not None
    if not (rate_ignored and rate is None):
        rate = _check_rate(rate)
    n = len(y)

    if kind == "none":
        noisy = y.copy()
    elif kind == "sym":
        noisy = _compute_sym(y, k, _n_flips(rate, n), rng)
    elif kind == "asym" and transition is not None:
        noisy = _compute_transition(y, k, _check_transition(transition, k), rng)
    elif kind == "asym":
        noisy = _compute_asym(y, k, _n_flips(rate, n), rng)
    else:
        feats = _check_features(features, n)
        if not 0.0 < float(clean_fraction) <= 1.0:
            raise ValueError(f"clean_fraction must be in (0, 1], got {clean_fraction}")
        present = np.unique(y)
        if present.size < 2:
            raise ValueError(
                f"idn noise needs at least two classes present in labels to train its "
                f"classifier; only class {int(present[0])} is present"
            )
        noisy = _compute_idn(y, k, _n_flips(rate, n), feats, float(clean_fraction), rng)
    return _compute_realised(y, noisy, k)


def noisy_dataset(
    ds: TextDataset,
    kind: str,
    rate: float | None,
    rng: np.random.Generator,
    transition: Any = None,
    clean_fraction: float = 0.1,
) -> tuple[TextDataset, NoisyLabels]:
    """A copy of `ds` (N rows) with noise injected into its labels.

    The copy's `labels` are the noisy ones and its `true_labels` are ds.labels, the
    labels the noise was injected into (any earlier ds.true_labels are replaced): every
    metric then scores against the originals. Its `frame` is ds.frame unchanged, so the
    frame's label column still holds the CLEAN labels; read the noisy ones from
    `labels`/`label_names`. For kind="idn" the classifier's features are TF-IDF
    vectors of the texts (sublinear tf, at most 20,000 terms).
    """
    if not isinstance(ds, TextDataset):
        raise ValueError(f"ds must be a TextDataset, got {type(ds).__name__}")
    features = _tfidf_features(ds.texts) if kind == "idn" else None
    result = inject_noise(
        ds.labels,
        kind,
        rate,
        rng,
        num_classes=ds.num_classes,
        transition=transition,
        features=features,
        clean_fraction=clean_fraction,
    )
    what = "no noise" if kind == "none" else f"{kind} noise {result.rate:.1%}"
    noisy = ds.with_labels(result.noisy, true_labels=ds.labels.copy())
    noisy.source = f"{ds.source} + {what}" if ds.source else what
    return noisy, result


# ---- validation --------------------------------------------------------------------


def _first_rows(positions: np.ndarray) -> str:
    rows = np.asarray(positions) + 1
    shown = ", ".join(str(int(r)) for r in rows[:_EXAMPLE_ROWS])
    more = ", ..." if len(rows) > _EXAMPLE_ROWS else ""
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''} (1-based: {shown}{more})"


def _check_labels(labels: Any, num_classes: int | None) -> tuple[np.ndarray, int]:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array (N,), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        whole = np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()
        if not whole:
            raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if k < 2:
        raise ValueError(f"noise needs at least 2 classes, got num_classes={k}")
    bad = np.flatnonzero((y < 0) | (y >= k))
    if bad.size:
        raise ValueError(
            f"labels must be class ids in 0..{k - 1}; {_first_rows(bad)} are outside "
            f"(values {sorted(set(y[bad][:5].tolist()))}). Fix: pass num_classes or map labels to ids"
        )
    return y, k


def _check_rate(rate: Any) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}") from None
    if not (0.0 <= r < 1.0):
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    return r


def _check_transition(transition: Any, k: int) -> np.ndarray:
    t = np.asarray(transition, dtype=np.float64)
    if t.shape != (k, k):
        raise ValueError(f"transition must have shape ({k}, {k}), got {t.shape}")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ValueError("transition must hold finite, non-negative probabilities")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if bad.size:
        raise ValueError(
            f"each transition row must sum to 1; rows (classes) {bad[:8].tolist()} sum to "
            f"{np.round(sums[bad][:8], 6).tolist()}. Fix: row-normalise the matrix"
        )
    return t


def _check_features(features: Any, n: int) -> Any:
    if features is None:
        raise ValueError("idn noise needs features: an (N, D) array or sparse matrix, one row per label")
    shape = getattr(features, "shape", None)
    if shape is None:
        features = np.asarray(features, dtype=np.float64)
        shape = features.shape
    if len(shape) != 2 or shape[0] != n:
        raise ValueError(f"features must have shape ({n}, D), one row per label; got {tuple(shape)}")
    return features


def _n_flips(rate: float, n: int) -> int:
    return int(round(rate * n))


# ---- computation (inputs already valid) -----------------------------------------------


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    """Non-negative ints close to `quotas` that sum to `total` (ties: lower index first)."""
    base = np.floor(quotas).astype(np.int64)
    short = int(total - base.sum())
    if short > 0:
        order = np.argsort(-(quotas - base), kind="stable")
        base[order[:short]] += 1
    return base


def _compute_sym(y: np.ndarray, k: int, n_flip: int, rng: np.random.Generator) -> np.ndarray:
    noisy = y.copy()
    idx = rng.choice(len(y), size=n_flip, replace=False)
    noisy[idx] = (y[idx] + rng.integers(1, k, size=n_flip)) % k
    return noisy


def _compute_asym(y: np.ndarray, k: int, n_flip: int, rng: np.random.Generator) -> np.ndarray:
    sizes = np.bincount(y, minlength=k)
    per_class = _largest_remainder(n_flip * sizes / len(y), n_flip)
    noisy = y.copy()
    for c in np.flatnonzero(per_class):
        members = np.flatnonzero(y == c)
        chosen = rng.choice(members, size=int(per_class[c]), replace=False)
        noisy[chosen] = (c + 1) % k
    return noisy


def _compute_transition(y: np.ndarray, k: int, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = y.copy()
    for c in range(k):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            continue
        counts = _largest_remainder(t[c] * members.size, members.size)
        shuffled = rng.permutation(members)
        noisy[shuffled] = np.repeat(np.arange(k), counts)
    return noisy


def _clean_subset(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified sample: per class round(fraction * n_c), at least 2 (or all it has)."""
    chosen = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        m = min(members.size, max(2, int(round(fraction * members.size))))
        chosen.append(rng.choice(members, size=m, replace=False))
    return np.sort(np.concatenate(chosen))


def _compute_idn(
    y: np.ndarray, k: int, n_flip: int, features: Any, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    train = _clean_subset(y, fraction, rng)
    clf = LogisticRegression(max_iter=1000, random_state=int(rng.integers(2**31 - 1)))
    clf.fit(features[train], y[train])
    proba = np.zeros((len(y), k))
    proba[:, clf.classes_] = clf.predict_proba(features)
    rows = np.arange(len(y))
    own = proba[rows, y]
    others = proba.copy()
    others[rows, y] = -np.inf
    best_other = others.argmax(axis=1)
    margin = own - others[rows, best_other]
    order = np.lexsort((rng.random(len(y)), margin))  # smallest margin first, ties random
    noisy = y.copy()
    flip = order[:n_flip]
    noisy[flip] = best_other[flip]
    return noisy


def _compute_realised(y: np.ndarray, noisy: np.ndarray, k: int) -> NoisyLabels:
    counts = np.bincount(y * k + noisy, minlength=k * k).reshape(k, k).astype(np.int64)
    sums = counts.sum(axis=1, keepdims=True)
    transition = np.where(sums > 0, counts / np.maximum(sums, 1), np.eye(k))
    flipped = noisy != y
    return NoisyLabels(
        noisy=noisy.astype(np.int64),
        flipped=flipped,
        transition=transition,
        counts=counts,
        rate=float(flipped.mean()),
    )


def _tfidf_features(texts: list[str]) -> Any:
    """(N, D) sparse TF-IDF of the texts; character n-grams if no word survives."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        return TfidfVectorizer(sublinear_tf=True, max_features=20000).fit_transform(texts)
    except ValueError:  # empty vocabulary: texts of emoji, single letters, ...
        vec = TfidfVectorizer(sublinear_tf=True, max_features=20000, analyzer="char_wb", ngram_range=(1, 3))
        return vec.fit_transform(texts)
