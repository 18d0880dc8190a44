"""The Explore page's engine (issue #13): a 2-D map of a run's sentence embeddings,
near-duplicates with conflicting labels, and outliers. Pure numpy / scikit-learn (no
Streamlit); the embeddings are the ones the trainer's scoring pass already computes
(EpochReport.embeddings, float16, kept by the store for the recommended and the last epoch).

    xy = project(embeddings, "pca")                       # (N, 2) float32
    dup = near_duplicates(embeddings, texts, labels, threshold=0.97)
    score = outlier_scores(embeddings, labels)           # (N,), higher = farther from every class
    cols = issue_columns(dup, score)                     # the export's / samples.csv's columns

Nothing here builds an N x N matrix: the neighbour searches go through scikit-learn's
NearestNeighbors, which works through the rows in chunks (`working_memory`).

Near-duplicates: two samples are near-duplicates when the cosine similarity of their
embeddings is at least `threshold`, or when their normalised texts (Unicode NFKC, case
folded, whitespace collapsed) are identical. Groups are the connected components of that
relation. A group whose given labels differ is an issue (`is_near_duplicate`); exact
duplicates (identical normalised text) that agree on the label are only counted.

Outliers: the cosine distance of a sample to the nearest class centroid (far from every
class); flagged above median + OUTLIER_IQR_FACTOR x IQR of the scores (a rule that flags
few on data without far-off points, unlike a fixed share). The k-nearest-neighbour score
cleanlab's Datalab uses is there too (method="knn"), but measured worse on junk that comes
in a bunch (docs/BENCHMARKS.md, section explore).
"""

from __future__ import annotations

import dataclasses
import re
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "ISSUE_COLUMNS",
    "MAP_POINT_LIMIT",
    "NearDuplicates",
    "available_projections",
    "duplicate_groups_frame",
    "find_issues",
    "issue_columns",
    "knn_accuracy",
    "map_sample",
    "near_duplicates",
    "normalise_text",
    "outlier_flags",
    "outlier_scores",
    "project",
]

DEFAULT_DUPLICATE_THRESHOLD = 0.97
# An embedding pair counts only if the two texts also share this share of their words
# (Jaccard of the word sets): a fine-tuned encoder maps a whole class into a tight
# cluster (on a 1,000-text TREC run 180 samples chained into one "group" at 0.97), so
# similar embeddings alone say "same class", not "same text".
MIN_WORD_OVERLAP = 0.5
REDUCE_ABOVE = 20_000  # above this many samples the near-duplicate search first looks in
REDUCED_DIM = 64  # a REDUCED_DIM-wide PCA subspace, then checks the candidates in full
OUTLIER_K = 10
OUTLIER_IQR_FACTOR = 1.5
MAP_POINT_LIMIT = 100_000  # the map draws at most this many points (a seeded sample beyond)
ISSUE_COLUMNS = ("is_near_duplicate", "near_duplicate_group", "is_outlier", "outlier_score")
PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE (scikit-learn)"}
TSNE_LIMIT = 10_000  # t-SNE took 2.5 min for 5,452 points on 2 cores (docs/BENCHMARKS.md): refused above


def _check_embeddings(embeddings: Any, what: str = "embeddings", min_rows: int = 1) -> np.ndarray:
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (N samples x H dimensions), got shape {emb.shape}")
    if emb.shape[0] < min_rows or emb.shape[1] < 1:
        raise ValueError(f"{what} needs at least {min_rows} rows and 1 column, got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.number) or np.issubdtype(emb.dtype, np.complexfloating):
        raise ValueError(f"{what} must hold real numbers, got dtype {emb.dtype}")
    emb = emb.astype(np.float32, copy=False)
    if not np.isfinite(emb).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return emb


def _unit_rows(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero): cosine similarity = dot product."""
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norm > 0, norm, 1.0)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


# ---- the map -----------------------------------------------------------------------------------


def available_projections() -> dict[str, str]:
    """{method: display name} of the projections this installation can make."""
    return dict(PROJECTION_NAMES)


def project(embeddings: Any, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) float32 coordinates of the (N, H) embeddings.

    method: "pca" (scikit-learn's PCA of the unit-length rows, randomized SVD; about a
    second at 100k x 384) or "tsne" (scikit-learn's Barnes-Hut t-SNE of the first 50
    principal components; at most TSNE_LIMIT rows, it takes minutes beyond). seed: the
    random state of both.
    """
    if method not in PROJECTION_NAMES:
        raise ValueError(f"unknown projection {method!r}; choose one of {sorted(PROJECTION_NAMES)}")
    seed = _check_seed(seed)
    emb = _unit_rows(_check_embeddings(embeddings, min_rows=3 if method == "tsne" else 1))
    n, h = emb.shape
    if n == 1:
        return np.zeros((1, 2), dtype=np.float32)
    from sklearn.decomposition import PCA

    if method == "pca":
        k = min(2, n, h)
        xy = PCA(n_components=k, svd_solver="randomized" if n > 1000 else "full", random_state=seed).fit_transform(emb)
        if k < 2:
            xy = np.hstack([xy, np.zeros((n, 2 - k))])
        return xy.astype(np.float32)
    if n > TSNE_LIMIT:
        raise ValueError(f"t-SNE is limited to {TSNE_LIMIT:,} samples here ({n:,} given); use PCA for this many")
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=min(50, n, h), random_state=seed).fit_transform(emb) if h > 50 else emb
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
              learning_rate="auto").fit_transform(reduced)
    return xy.astype(np.float32)


def knn_accuracy(coords: Any, labels: Any, k: int = 10) -> float:
    """How well classes separate on a map: the share of samples whose k nearest other
    points (Euclidean, on `coords`) vote for their own label (majority vote, ties to the
    lowest class id). 1.0 = classes in clean islands; 1/K or below = mixed."""
    xy = _check_embeddings(coords, "coords", min_rows=2)
    y = np.asarray(labels)
    if y.shape != (len(xy),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ({len(xy)},) integer class ids, got {y.shape} {y.dtype}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(xy) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)
    votes = y[idx[:, 1:]]  # drop the point itself
    nclass = int(y.max()) + 1
    counts = np.zeros((len(y), nclass), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(y)), k), votes.ravel()), 1)
    return float((counts.argmax(1) == y).mean())


def map_sample(n: int, limit: int = MAP_POINT_LIMIT, seed: int = 0, keep: Any = None) -> np.ndarray:
    """Sorted indices of the points the map draws: all of them up to `limit`, else a
    seeded random `limit` of them that always includes the indices in `keep` (e.g. the
    flagged samples)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(_check_seed(seed))
    must = np.unique(np.asarray(keep if keep is not None else [], dtype=np.int64))
    must = must[(must >= 0) & (must < n)][:limit]
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), must, assume_unique=True)
    extra = rng.choice(rest, size=limit - len(must), replace=False)
    return np.sort(np.concatenate([must, extra]))


# ---- near-duplicates ------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def normalise_text(text: Any) -> str:
    """The text two exact duplicates share: Unicode NFKC, case-folded, whitespace runs
    collapsed to one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()


@dataclasses.dataclass
class NearDuplicates:
    """near_duplicates()'s answer.

    group: (N,) int64, the sample's near-duplicate group (0.. in order of the group's
        first sample), -1 for a sample without a near-duplicate.
    is_near_duplicate: (N,) bool, in a group whose given labels differ (an issue).
    n_groups: groups of two or more samples; n_conflicting: of those, with differing labels.
    n_exact_same_label: samples whose normalised text repeats an earlier sample's with
        the same label (exact duplicates that are not issues; counted, not flagged).
    largest_group: the size of the biggest group (a huge one means the threshold is too
        low for these embeddings).
    threshold: the cosine similarity used; seconds: how long the search took.
    """

    group: np.ndarray
    is_near_duplicate: np.ndarray
    n_groups: int
    n_conflicting: int
    n_exact_same_label: int
    largest_group: int
    threshold: float
    seconds: float


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not np.isfinite(threshold) or not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in (0, 1], got {threshold!r}")
    return float(threshold)


def exact_text_groups(texts: Sequence[Any]) -> np.ndarray:
    """(N,) int64: for each sample, the index of the first sample with the same
    normalised text (itself when it is the first)."""
    first: dict[str, int] = {}
    return np.fromiter((first.setdefault(normalise_text(t), i) for i, t in enumerate(texts)),
                       dtype=np.int64, count=len(texts))


def _word_overlap(texts: Sequence[Any], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) Jaccard similarity of the normalised word sets of texts a[i] and b[i] (1.0 for
    two texts without words), from a binary hashed bag of words; chunked sparse products."""
    from sklearn.feature_extraction.text import HashingVectorizer

    if len(a) == 0:
        return np.zeros(0)
    used = np.unique(np.concatenate([a, b]))
    pos = np.full(len(texts), -1, dtype=np.int64)
    pos[used] = np.arange(len(used))
    bags = HashingVectorizer(n_features=2 ** 20, binary=True, norm=None, alternate_sign=False,
                             token_pattern=r"(?u)\b\w+\b").transform([normalise_text(texts[i]) for i in used]).tocsr()
    size = np.asarray(bags.sum(axis=1)).ravel()
    out = np.empty(len(a))
    for start in range(0, len(a), 200_000):
        pa, pb = pos[a[start:start + 200_000]], pos[b[start:start + 200_000]]
        inter = np.asarray(bags[pa].multiply(bags[pb]).sum(axis=1)).ravel()
        union = size[pa] + size[pb] - inter
        out[start:start + 200_000] = np.divide(inter, union, out=np.ones(len(pa)), where=union > 0)
    return out


def near_duplicates(embeddings: Any, texts: Sequence[Any], labels: Any,
                    threshold: float = DEFAULT_DUPLICATE_THRESHOLD, use_embeddings: bool = True,
                    n_jobs: int | None = None, min_word_overlap: float = MIN_WORD_OVERLAP) -> NearDuplicates:
    """Near-duplicate groups of N samples: cosine similarity of the (N, H) embeddings at
    least `threshold` (sklearn NearestNeighbors radius search on unit rows, chunked) and
    at least `min_word_overlap` of their words shared (0 = embeddings alone), or
    identical normalised text; groups = connected components. labels: (N,) int given
    labels (a group whose labels differ is an issue). use_embeddings=False: identical
    text only (embeddings may then be None). Above REDUCE_ABOVE samples the candidates
    come from a REDUCED_DIM-wide PCA subspace (a projection only shortens distances, so
    no pair is missed) and are then checked with the full embeddings."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    threshold = _check_threshold(threshold)
    n = len(texts)
    y = np.asarray(labels)
    if y.shape != (n,) or (n and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"labels must be ({n},) integer class ids (one per text), got {y.shape} {y.dtype}")
    t0 = time.perf_counter()
    first = exact_text_groups(texts)
    rows, cols = [np.arange(n)], [first]
    if use_embeddings and n > 1:
        emb = _check_embeddings(embeddings)
        if len(emb) != n:
            raise ValueError(f"embeddings have {len(emb)} rows but there are {n} texts")
        from sklearn.neighbors import NearestNeighbors

        unit = _unit_rows(emb)
        radius = float(np.sqrt(max(0.0, 2.0 - 2.0 * threshold)) + 1e-6)  # |a-b|^2 = 2 - 2cos
        search = unit
        if n > REDUCE_ABOVE and unit.shape[1] > REDUCED_DIM:
            # Candidates in a PCA subspace, then checked in full: a projection never lengthens
            # a distance, so every pair within the radius is among the candidates (exact).
            from sklearn.decomposition import PCA

            rng = np.random.default_rng(0)
            fit_rows = unit[rng.choice(n, size=min(n, 20_000), replace=False)]
            pca = PCA(n_components=REDUCED_DIM, svd_solver="randomized", random_state=0).fit(fit_rows)
            search = (unit @ pca.components_.T).astype(np.float32)  # no centring: same differences
        graph = NearestNeighbors(radius=radius, algorithm="brute", n_jobs=n_jobs).fit(search) \
            .radius_neighbors_graph(search, mode="connectivity").tocoo()
        r_, c_ = graph.row, graph.col
        if search is not unit:
            keep = np.empty(len(r_), dtype=bool)
            for start in range(0, len(r_), 1_000_000):
                a, b = r_[start:start + 1_000_000], c_[start:start + 1_000_000]
                keep[start:start + 1_000_000] = np.einsum("ij,ij->i", unit[a], unit[b]) >= threshold - 1e-6
            r_, c_ = r_[keep], c_[keep]
        pair = r_ < c_  # each pair once, no self-pairs
        r_, c_ = r_[pair], c_[pair]
        if min_word_overlap > 0:
            keep = _word_overlap(texts, r_, c_) >= min_word_overlap
            r_, c_ = r_[keep], c_[keep]
        rows.append(r_)
        cols.append(c_)
    r, c = np.concatenate(rows), np.concatenate(cols)
    _, comp = connected_components(coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n)),
                                   directed=False)
    sizes = np.bincount(comp, minlength=comp.max() + 1 if n else 0)
    multi = sizes[comp] > 1 if n else np.zeros(0, dtype=bool)
    group = np.full(n, -1, dtype=np.int64)
    if multi.any():
        # renumber the multi-sample components 0.. in order of their first sample
        _, first_pos, inv = np.unique(comp[multi], return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(np.flatnonzero(multi)[first_pos]))
        group[multi] = order[inv]
    n_groups = int(group.max()) + 1 if n else 0
    conflicting = np.zeros(n_groups, dtype=bool)
    if n_groups:
        gi = group[multi]
        lo = np.full(n_groups, np.iinfo(np.int64).max)
        hi = np.full(n_groups, np.iinfo(np.int64).min)
        np.minimum.at(lo, gi, y[multi])
        np.maximum.at(hi, gi, y[multi])
        conflicting = lo != hi
    is_dup = np.zeros(n, dtype=bool)
    is_dup[multi] = conflicting[group[multi]]
    repeats = first != np.arange(n)
    same_label = int((repeats & (y == y[first])).sum()) if n else 0
    return NearDuplicates(
        group=group, is_near_duplicate=is_dup, n_groups=n_groups, n_conflicting=int(conflicting.sum()),
        n_exact_same_label=same_label, largest_group=int(sizes.max()) if n else 0, threshold=threshold,
        seconds=time.perf_counter() - t0,
    )


def duplicate_groups_frame(dup: NearDuplicates, conflicting_only: bool = True) -> pd.DataFrame:
    """One row per sample of the (conflicting) groups: group, sample_index; sorted by
    group size (pairs first), then group, then sample."""
    members = np.flatnonzero(dup.is_near_duplicate if conflicting_only else dup.group >= 0)
    g = dup.group[members]
    sizes = np.bincount(g, minlength=dup.n_groups)[g] if len(g) else np.zeros(0, dtype=np.int64)
    order = np.lexsort((members, g, sizes))
    return pd.DataFrame({"group": g[order], "sample_index": members[order], "group_size": sizes[order]})


# ---- outliers ------------------------------------------------------------------------------------


def outlier_scores(embeddings: Any, labels: Any = None, method: str = "centroid", k: int = OUTLIER_K,
                   n_jobs: int | None = None) -> np.ndarray:
    """(N,) float64, higher = farther from the data.

    method "centroid" (the default; needs labels): the cosine distance (1 - cos) of a
        sample to the nearest class centroid (the mean unit embedding of each given class):
        far from every class.
    method "knn": the mean cosine distance to the k nearest other samples (cleanlab
        Datalab's score before its exp transform). It misses junk that comes in a bunch
        (200 texts of another corpus are each other's neighbours: docs/BENCHMARKS.md).
    """
    emb = _unit_rows(_check_embeddings(embeddings, min_rows=2))
    if method == "centroid":
        y = np.asarray(labels) if labels is not None else None
        if y is None or y.shape != (len(emb),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"the centroid outlier score needs ({len(emb)},) non-negative integer labels")
        k_cls = int(y.max()) + 1
        sums = np.zeros((k_cls, emb.shape[1]), dtype=np.float64)
        np.add.at(sums, y, emb)
        present = np.bincount(y, minlength=k_cls) > 0
        cent = _unit_rows(sums[present].astype(np.float32))
        best = np.full(len(emb), -np.inf)
        for start in range(0, len(emb), 8192):  # (chunk, K) at a time, never (N, N)
            best[start:start + 8192] = (emb[start:start + 8192] @ cent.T).max(1)
        return 1.0 - best
    if method != "knn":
        raise ValueError(f"method must be 'centroid' or 'knn', got {method!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(emb) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=n_jobs).fit(emb).kneighbors(emb)
    # drop each row's own entry (not necessarily column 0 when the sample has exact copies)
    own = idx == np.arange(len(emb))[:, None]
    drop = np.where(own.any(1), own.argmax(1), k)
    keep = np.ones_like(own)
    keep[np.arange(len(emb)), drop] = False
    d = dist[keep].reshape(len(emb), k)
    return (d.astype(np.float64) ** 2 / 2.0).mean(1)  # Euclidean on unit rows -> 1 - cos


def outlier_flags(scores: Any, factor: float = OUTLIER_IQR_FACTOR) -> np.ndarray:
    """(N,) bool: score above median + factor x IQR (NaN scores are not flagged)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D array, got shape {s.shape}")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ValueError(f"factor must be a positive number, got {factor!r}")
    finite = s[np.isfinite(s)]
    if finite.size < 4:
        return np.zeros(len(s), dtype=bool)
    q1, med, q3 = np.percentile(finite, [25, 50, 75])
    with np.errstate(invalid="ignore"):
        return s > med + factor * max(q3 - q1, 1e-12)


def issue_columns(dup: NearDuplicates | None, scores: Any | None, n: int) -> pd.DataFrame:
    """The export's and samples.csv's columns is_near_duplicate, near_duplicate_group
    (nullable Int64, NA outside a conflicting group), is_outlier, outlier_score; NA
    everywhere when there are no embeddings (dup / scores None)."""
    out = pd.DataFrame(index=pd.RangeIndex(n))
    if dup is None:
        out["is_near_duplicate"] = pd.array([pd.NA] * n, dtype="boolean")
        out["near_duplicate_group"] = pd.array([pd.NA] * n, dtype="Int64")
    else:
        if len(dup.group) != n:
            raise ValueError(f"the near-duplicates are of {len(dup.group)} samples, not {n}")
        out["is_near_duplicate"] = pd.array(dup.is_near_duplicate, dtype="boolean")
        grp = pd.array(dup.group, dtype="Int64")
        grp[~dup.is_near_duplicate] = pd.NA
        out["near_duplicate_group"] = grp
    if scores is None:
        out["is_outlier"] = pd.array([pd.NA] * n, dtype="boolean")
        out["outlier_score"] = np.full(n, np.nan)
    else:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"outlier scores have shape {s.shape}, expected ({n},)")
        out["is_outlier"] = pd.array(outlier_flags(s), dtype="boolean")
        out["outlier_score"] = s
    return out


def find_issues(embeddings: Any | None, texts: Sequence[Any], labels: Any,
                threshold: float = DEFAULT_DUPLICATE_THRESHOLD) -> tuple[NearDuplicates, np.ndarray | None]:
    """(near-duplicates, outlier scores) of one epoch: with embeddings None (a run from
    before they were kept), identical normalised texts only and no outlier scores."""
    dup = near_duplicates(embeddings, texts, labels, threshold, use_embeddings=embeddings is not None)
    scores = None if embeddings is None else outlier_scores(embeddings, labels)
    return dup, scores
