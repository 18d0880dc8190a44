"""The Explore page's helpers (issue #13): cached embeddings, projections and issue
searches of a run's epoch, the selection a chart event names, and the hand-over of a
selection to the Review page.

A selection travels to Review as session state REVIEW_SELECTION = {"run": run id,
"samples": [sample indices], "name": "selected on the map"}; the Review page filters its
table to exactly those samples and names the selection in the decision log (the note of
every bulk action made on it). This is the confused-pair hand-over of the Train page
(`review_pair`) generalised to any set of samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import streamlit as st

from selfmix_core import explore

from .state import session_cached

REVIEW_SELECTION = "review_selection"
DUP_THRESHOLD_KEY = "explore_dup_threshold"


def embeddings(store, run_id: str, epoch: int) -> np.ndarray | None:
    """Epoch `epoch`'s (N, H) float16 embeddings, or None when the store keeps none for it
    (kept in this session: the last two loaded)."""
    return session_cached("_embedding_cache", (str(store.home), run_id, int(epoch)), 2,
                          lambda: store.load_embeddings(run_id, int(epoch)))


def projection(store, run_id: str, epoch: int, method: str) -> tuple[np.ndarray, float, bool] | None:
    """((N, 2) coordinates, seconds the projection took, whether it came from the cache)
    of epoch `epoch`'s embeddings, or None without embeddings. Made once, then cached in
    the store (Store.save_projection)."""
    cached = store.load_projection(run_id, int(epoch), method)
    if cached is not None:
        return cached[0], cached[1], True
    emb = embeddings(store, run_id, epoch)
    if emb is None:
        return None
    import time

    t0 = time.perf_counter()
    xy = explore.project(emb, method, seed=0)
    seconds = time.perf_counter() - t0
    store.save_projection(run_id, int(epoch), method, xy, seconds)
    return xy, seconds, False


def dup_threshold() -> float:
    """The near-duplicate threshold the person set on the Explore page (default
    explore.DEFAULT_DUPLICATE_THRESHOLD); Review and Export use the same one."""
    v = st.session_state.get(DUP_THRESHOLD_KEY, explore.DEFAULT_DUPLICATE_THRESHOLD)
    return float(v) if isinstance(v, (int, float)) and 0 < float(v) <= 1 else explore.DEFAULT_DUPLICATE_THRESHOLD


@st.cache_resource(show_spinner=False, max_entries=4)
def _issues_cached(home: str, run_id: str, epoch: int, threshold: float, saved: Any, _emb, _texts, _labels):
    return explore.find_issues(_emb, _texts, _labels, threshold)


def issues(store, run_id: str, epoch: int, dataset, threshold: float | None = None):
    """(NearDuplicates, outlier scores or None) of the run's epoch for the dataset's given
    labels (cached per run, epoch and threshold)."""
    thr = dup_threshold() if threshold is None else float(threshold)
    emb = embeddings(store, run_id, epoch)
    saved = None if emb is None else emb.shape
    return _issues_cached(str(store.home), run_id, int(epoch), thr, saved, emb, list(dataset.texts),
                          np.asarray(dataset.labels, dtype=np.int64))


def issue_frame(store, run_id: str, epoch: int, dataset):
    """The four issue columns (explore.issue_columns) of the run's epoch."""
    dup, scores = issues(store, run_id, epoch, dataset)
    return explore.issue_columns(dup, scores, len(dataset))


# ---- selections ---------------------------------------------------------------------------------


def selected_samples(event: Any) -> list[int]:
    """The sample indices a plotly selection event names (every point's customdata is its
    sample index), sorted, without repeats; [] for no event or no selection."""
    sel = _get(event, "selection")
    points = _get(sel, "points") or []
    out = set()
    for p in points:
        cd = _get(p, "customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if isinstance(cd, (int, float)) and not isinstance(cd, bool) and float(cd).is_integer() and cd >= 0:
            out.add(int(cd))
    return sorted(out)


def _pairs(event: Any) -> list[tuple[float, float]]:
    """The two-number customdata of the points a selection event names."""
    points = _get(_get(event, "selection"), "points") or []
    out = []
    for p in points:
        cd = _get(p, "customdata")
        if isinstance(cd, (list, tuple)) and len(cd) == 2 and all(isinstance(v, (int, float)) for v in cd):
            out.append((cd[0], cd[1]))
    return out


def selected_cells(event: Any) -> list[tuple[int, int]]:
    """The (given, predicted) cells a selectable_matrix event names."""
    return sorted({(int(a), int(b)) for a, b in _pairs(event)})


def selected_ranges(event: Any) -> list[tuple[float, float]]:
    """The [lo, hi] loss ranges of the bars a selectable_loss_histogram event names."""
    return sorted({(float(a), float(b)) for a, b in _pairs(event)})


def samples_in_ranges(loss: np.ndarray, mask: np.ndarray, ranges: Iterable[tuple[float, float]]) -> np.ndarray:
    """Sample indices with `mask` True and a loss inside any of the [lo, hi] ranges."""
    loss = np.asarray(loss, dtype=np.float64)
    hit = np.zeros(len(loss), dtype=bool)
    for lo, hi in ranges:
        hit |= (loss >= lo) & (loss <= hi)
    return np.flatnonzero(hit & np.asarray(mask, dtype=bool))


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def send_to_review(run_id: str, samples: Iterable[int], name: str) -> None:
    """Open the Review page filtered to exactly these samples; `name` ("selected on the
    map") names the selection on that page and in the decision log."""
    from studio import state

    idx = sorted({int(i) for i in samples})
    if not idx:
        raise ValueError("the selection is empty: select some samples first")
    ss = st.session_state
    ss[REVIEW_SELECTION] = {"run": run_id, "samples": idx, "name": str(name)}
    ss["review_page"] = 1  # the Review table starts on its first page (its pager key changes)
    ss["review_pager_v"] = ss.get("review_pager_v", 0) + 1
    st.switch_page(state.PAGE_REVIEW)


def active_selection(run_id: str) -> dict | None:
    """The selection the Review page is filtered to, when it is of this run."""
    sel = st.session_state.get(REVIEW_SELECTION)
    if isinstance(sel, dict) and sel.get("run") == run_id and isinstance(sel.get("samples"), list):
        return sel
    return None
