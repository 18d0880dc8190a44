"""The review table: one row per training sample, built from an epoch report and the
review decisions, filtered and sorted for a person to go through. Pure pandas/numpy
(no Streamlit), so the page stays thin and every rule here is tested directly.

    df = review_frame(texts, report, label_names, store.current_decisions(run_id),
                      given_labels=dataset.labels)
    page = filter_review(df, given=["fruit"], score_range=(0, 0.3), query="apple")

Score direction: `label_score` is the model's probability of the given label
(exp(-loss), the report's per-sample cross-entropy of its label), with a real spread
where the GMM posterior `clean_prob` saturates at 0 for every top row; both are LOWER =
MORE LIKELY MISLABELED and the review order is label_score ascending (ties: clean_prob).
A report without losses falls back to label_score = clean_prob.

A flagged sample whose suggestion IS its given label is "uncertain" (the model agrees but
is unsure of it), not "likely mislabeled": the `status` column keeps them apart and
filter_review(status=...) picks either.

The review set (`flagged_only=True`) is the samples flagged in the report
(clean_prob < tau, still in training) PLUS every sample that already has a decision:
a decision fed back into training usually makes the sample look clean in the next
epoch, and it must not vanish from the list the person is working through.

Decisions map to the store's actions (Store.add_decision):
    "accept"  -> the model's suggestion becomes the label (new_label = suggested)
    "relabel" -> another class picked by hand (new_label = that class)
    "keep"    -> the given label stays
    "drop"    -> the sample leaves the dataset
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ACCEPT_CHOICE",
    "DROP_CHOICE",
    "KEEP_CHOICE",
    "REVIEW_COLUMNS",
    "STATUS_MISLABELED",
    "STATUS_UNCERTAIN",
    "bulk_accept_rows",
    "bulk_note",
    "bulk_rows",
    "choice_to_decision",
    "decision_choice",
    "decision_choices",
    "describe_conflicts",
    "describe_undo",
    "filter_review",
    "review_counts",
    "review_frame",
    "top_suggestions",
    "undo_last_action",
]

REVIEW_COLUMNS = (
    "sample_index",
    "text",
    "given_label",
    "suggested_label",
    "confidence",
    "clean_prob",
    "label_score",
    "is_label_issue",
    "status",
    "action",
    "decision",
    "final_label",
    "given_id",
    "suggested_id",
    "final_id",
    "in_review",
    "decision_id",
)

# The status of a flagged sample ("" for a sample that is not flagged).
STATUS_MISLABELED = "likely mislabeled"
STATUS_UNCERTAIN = "uncertain"

# The choices of the per-row "decision" selectbox. Relabel choices are LABEL_PREFIX + name.
ACCEPT_CHOICE = "accept suggestion"
KEEP_CHOICE = "keep given label"
DROP_CHOICE = "drop sample"
LABEL_PREFIX = "label: "


def decision_choices(label_names: Sequence[str]) -> list[str]:
    """All choices of the decision column: accept, keep, drop, then one per class."""
    return [ACCEPT_CHOICE, KEEP_CHOICE, DROP_CHOICE] + [LABEL_PREFIX + str(n) for n in label_names]


def decision_choice(action: str | None, final_label: str | None) -> str | None:
    """The selectbox choice showing an existing decision (None when undecided)."""
    if action in (None, "", "none"):
        return None
    if action == "accept":
        return ACCEPT_CHOICE
    if action == "keep":
        return KEEP_CHOICE
    if action == "drop":
        return DROP_CHOICE
    return LABEL_PREFIX + str(final_label)


def choice_to_decision(
    choice: str, given_id: int, suggested_id: int, label_names: Sequence[str]
) -> tuple[str, int | None]:
    """(action, new_label) for a selectbox choice on a row with these given/suggested ids.

    Picking the given label by name is a "keep"; picking the suggested label by name is
    a "relabel" (the person chose it, whatever the model said). Raises ValueError for a
    choice that is not one of decision_choices(label_names).
    """
    if choice == ACCEPT_CHOICE:
        if int(suggested_id) == int(given_id):
            return "keep", None
        return "accept", int(suggested_id)
    if choice == KEEP_CHOICE:
        return "keep", None
    if choice == DROP_CHOICE:
        return "drop", None
    if isinstance(choice, str) and choice.startswith(LABEL_PREFIX):
        name = choice[len(LABEL_PREFIX):]
        names = [str(n) for n in label_names]
        if name in names:
            new = names.index(name)
            return ("keep", None) if new == int(given_id) else ("relabel", new)
    raise ValueError(f"unknown decision {choice!r}; choose one of {decision_choices(label_names)}")


def _codes_to_categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    codes = np.asarray(codes, dtype=np.int64)
    codes = np.where((codes >= 0) & (codes < len(names)), codes, -1)
    return pd.Categorical.from_codes(codes, categories=names)


def review_frame(
    texts: Sequence[str],
    report: Any,
    label_names: Sequence[str],
    decisions: Mapping[int, Mapping[str, Any]] | None = None,
    given_labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per training sample (N rows, row i = sample i).

    texts: (N,) the training texts. report: an EpochReport (its per-sample arrays).
    label_names: (K,) class names. decisions: Store.current_decisions() (sample index ->
    {"action", "new_label", ...}); None = no decisions.
    given_labels: (N,) the dataset's ORIGINAL given label ids. Default: report.given_label,
        which already holds review decisions once they were fed back into training, so
        pass the dataset's labels whenever a run may have applied decisions.

    Columns: sample_index, text, given_label / suggested_label / final_label (categorical
    class names; final_label is NaN for a dropped sample), confidence (the model's
    probability of its suggestion), label_score (the model's probability of the label
    the report scored, exp(-report.loss): the given label, or for a sample whose
    decision was already fed back into training its new label; clean_prob when the
    report has no finite losses), clean_prob (GMM posterior; NaN for samples out of training), both lower =
    more likely wrong, is_label_issue (bool), status (STATUS_MISLABELED for a flagged
    sample whose suggestion differs from its given label, STATUS_UNCERTAIN when it is
    the given label, "" when not flagged), action ("none",
    "accept", "relabel", "keep", "drop"), decision (the selectbox choice or None),
    given_id / suggested_id / final_id (int64 ids; final_id -1 when dropped), in_review
    (flagged or decided), decision_id (int64: the id of the sample's effective decision,
    -1 when undecided; a page passes what it showed as Store.add_decisions(expected=...)).
    """
    names = [str(n) for n in label_names]
    n = len(texts)
    given = np.asarray(report.given_label if given_labels is None else given_labels, dtype=np.int64)
    if given.shape != (n,):
        raise ValueError(f"given labels have shape {given.shape}, expected ({n},) (one per text)")
    arrays = {
        "clean_prob": np.asarray(report.clean_prob, dtype=np.float64),
        "predicted_label": np.asarray(report.predicted_label, dtype=np.int64),
        "predicted_prob": np.asarray(report.predicted_prob, dtype=np.float64),
        "in_training": np.asarray(report.in_training, dtype=bool),
    }
    for key, arr in arrays.items():
        if arr.shape != (n,):
            raise ValueError(
                f"report.{key} has shape {arr.shape} but there are {n} texts; the report and the "
                "dataset must be the same samples"
            )
    clean = arrays["clean_prob"]
    suggested = arrays["predicted_label"]
    flagged = (clean < float(report.tau)) & arrays["in_training"]  # NaN < tau is False
    score = _label_score(report, clean, n)
    status = np.full(n, "", dtype=object)
    status[flagged & (suggested != given)] = STATUS_MISLABELED
    status[flagged & (suggested == given)] = STATUS_UNCERTAIN

    action = np.full(n, "none", dtype=object)
    final = given.copy()
    decision_id = np.full(n, -1, dtype=np.int64)
    if decisions:
        idx = np.fromiter((int(i) for i in decisions), dtype=np.int64, count=len(decisions))
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][:5].tolist()
            raise ValueError(f"decisions name samples {bad} outside 0..{n - 1}")
        acts = np.array([str(d["action"]) for d in decisions.values()], dtype=object)
        new = np.array(
            [-1 if d.get("new_label") is None else int(d["new_label"]) for d in decisions.values()],
            dtype=np.int64,
        )
        action[idx] = acts
        decision_id[idx] = [-1 if d.get("decision_id") is None else int(d["decision_id"]) for d in decisions.values()]
        relabel = np.isin(acts, ("accept", "relabel"))
        final[idx[relabel]] = new[relabel]
        final[idx[acts == "drop"]] = -1
    decided = action != "none"
    final_cat = _codes_to_categorical(final, names)

    df = pd.DataFrame(
        {
            "sample_index": np.arange(n, dtype=np.int64),
            "text": pd.array(list(texts), dtype="str"),
            "given_label": _codes_to_categorical(given, names),
            "suggested_label": _codes_to_categorical(suggested, names),
            "confidence": arrays["predicted_prob"],
            "clean_prob": clean,
            "label_score": score,
            "is_label_issue": flagged,
            "status": status,
            "action": action,
            "final_label": final_cat,
            "given_id": given,
            "suggested_id": suggested,
            "final_id": final,
            "in_review": flagged | decided,
            "decision_id": decision_id,
        }
    )
    df["decision"] = _decision_column(action, final_cat, names)
    return df[list(REVIEW_COLUMNS)]


def _label_score(report: Any, clean: np.ndarray, n: int) -> np.ndarray:
    """EpochReport.label_score (exp(-loss): the model's probability of the label the report
    scored); clean_prob when the report has no (finite) per-sample losses of the right shape."""
    loss = getattr(report, "loss", None)
    if loss is None or np.shape(loss) != (n,) or not np.isfinite(np.asarray(loss, dtype=np.float64)).any():
        return clean.copy()
    return np.asarray(report.label_score, dtype=np.float64)


def top_suggestions(report: Any, sample: int, label_names: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The model's top-k labels for one sample, [(name, probability), ...] most likely
    first, from the report's top3_label / top3_prob arrays ((N, k)) when it has them;
    otherwise the top-1 (predicted_label, predicted_prob) alone."""
    names = [str(x) for x in label_names]
    labels, probs = getattr(report, "top3_label", None), getattr(report, "top3_prob", None)
    out: list[tuple[str, float]] = []
    if labels is not None and probs is not None:
        labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
        if labels.ndim == 2 and labels.shape == probs.shape and 0 <= sample < labels.shape[0]:
            for lab, p in zip(labels[sample][:k], probs[sample][:k]):
                if 0 <= int(lab) < len(names) and np.isfinite(p):
                    out.append((names[int(lab)], float(p)))
    if not out:
        lab = int(np.asarray(report.predicted_label)[sample])
        name = names[lab] if 0 <= lab < len(names) else str(lab)
        out = [(name, float(np.asarray(report.predicted_prob)[sample]))]
    return out


def _decision_column(action: np.ndarray, final: pd.Categorical, names: list[str]) -> np.ndarray:
    out = np.full(len(action), None, dtype=object)
    out[action == "accept"] = ACCEPT_CHOICE
    out[action == "keep"] = KEEP_CHOICE
    out[action == "drop"] = DROP_CHOICE
    relabel = np.flatnonzero(action == "relabel")
    if relabel.size:
        labels = np.asarray(final.astype(object))[relabel]
        out[relabel] = [LABEL_PREFIX + str(x) for x in labels]
    return out


def _as_name_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def filter_review(
    df: pd.DataFrame,
    given: str | Iterable[str] | None = None,
    suggested: str | Iterable[str] | None = None,
    score_range: tuple[float, float] = (0.0, 1.0),
    query: str = "",
    flagged_only: bool = True,
    undecided_only: bool = False,
    status: str | None = None,
    samples: Iterable[int] | None = None,
) -> pd.DataFrame:
    """The rows of a review_frame() that pass every filter, most likely wrong first.

    samples: sample indices to keep only (a selection from the Explore page, or the
        near-duplicates / outliers); None = every sample.
    given / suggested: class names (one, or a list; None or empty = all classes).
    score_range: (lo, hi) inclusive bounds on label_score. Samples without a score
        (dropped from training) pass only while the range is the full [0, 1].
    query: case-insensitive substring of the text (plain text, not a regex).
    flagged_only: keep the review set only (flagged, or already decided).
    undecided_only: keep rows without a decision only.
    status: STATUS_MISLABELED or STATUS_UNCERTAIN keeps the flagged samples of that
        status only (None or "" = no such filter).
    Sorted by label_score ascending (NaN last), ties by clean_prob, then sample_index.
    """
    mask = np.ones(len(df), dtype=bool)
    if samples is not None:
        idx = np.asarray(list(samples), dtype=np.int64)
        mask &= np.isin(df["sample_index"].to_numpy(dtype=np.int64), idx)
    if flagged_only:
        mask &= df["in_review"].to_numpy(dtype=bool)
    if undecided_only:
        mask &= (df["action"] == "none").to_numpy(dtype=bool)
    if status:
        if status not in (STATUS_MISLABELED, STATUS_UNCERTAIN):
            raise ValueError(f"status must be {STATUS_MISLABELED!r} or {STATUS_UNCERTAIN!r}, not {status!r}")
        mask &= (df["status"] == status).to_numpy(dtype=bool)
    names = _as_name_list(given)
    if names:
        mask &= df["given_label"].isin(names).to_numpy(dtype=bool)
    names = _as_name_list(suggested)
    if names:
        mask &= df["suggested_label"].isin(names).to_numpy(dtype=bool)
    lo, hi = float(score_range[0]), float(score_range[1])
    if lo > hi:
        lo, hi = hi, lo
    score = df["label_score"].to_numpy(dtype=np.float64)
    in_range = (score >= lo) & (score <= hi)
    if lo <= 0.0 and hi >= 1.0:
        in_range |= np.isnan(score)
    mask &= in_range
    query = (query or "").strip()
    if query:
        idx = np.flatnonzero(mask)  # search only the rows still in: less text to scan
        hits = df["text"].iloc[idx].str.contains(query, case=False, regex=False, na=False)
        keep = np.zeros(len(df), dtype=bool)
        keep[idx[hits.to_numpy(dtype=bool)]] = True
        mask &= keep
    idx = np.flatnonzero(mask)
    sub_score, sub_clean = score[idx], df["clean_prob"].to_numpy(dtype=np.float64)[idx]
    key = np.where(np.isnan(sub_score), np.inf, sub_score)
    key2 = np.where(np.isnan(sub_clean), np.inf, sub_clean)
    order = np.lexsort((df["sample_index"].to_numpy()[idx], key2, key))
    return df.iloc[idx[order]]


def review_counts(df: pd.DataFrame) -> dict[str, int]:
    """{"flagged": in the review set, "reviewed": of those with a decision,
    "decisions": all samples with a decision, "mislabeled" / "uncertain": flagged
    samples of that status, "total": rows}."""
    in_review = df["in_review"].to_numpy(dtype=bool)
    decided = (df["action"] != "none").to_numpy(dtype=bool)
    return {
        "flagged": int(in_review.sum()),
        "mislabeled": int((df["status"] == STATUS_MISLABELED).sum()),
        "uncertain": int((df["status"] == STATUS_UNCERTAIN).sum()),
        "reviewed": int((in_review & decided).sum()),
        "decisions": int(decided.sum()),
        "total": int(len(df)),
    }


def bulk_accept_rows(filtered: pd.DataFrame) -> pd.DataFrame:
    """Decisions accepting the suggestion on every UNDECIDED row of `filtered` whose
    suggestion differs from its given label. Columns sample_index, old_label,
    new_label, action: ready for Store.add_decisions()."""
    undecided = (filtered["action"] == "none").to_numpy(dtype=bool)
    differs = filtered["suggested_id"].to_numpy() != filtered["given_id"].to_numpy()
    rows = filtered.loc[undecided & differs]
    return pd.DataFrame(
        {
            "sample_index": rows["sample_index"].to_numpy(dtype=np.int64),
            "old_label": rows["given_id"].to_numpy(dtype=np.int64),
            "new_label": rows["suggested_id"].to_numpy(dtype=np.int64),
            "action": "accept",
        }
    )


BULK_VERBS = {"accept": "accepted the suggestion for", "relabel": "relabelled", "keep": "kept", "drop": "dropped"}


def bulk_rows(filtered: pd.DataFrame, action: str, label: int | None = None) -> pd.DataFrame:
    """One bulk action on every row of `filtered` (a selection): "accept" (the suggestion,
    rows whose suggestion differs from the given label only), "relabel" to class id
    `label` ("keep" for rows given that label), "keep" or "drop". Rows whose decision
    would not change are left out. Columns sample_index, old_label, new_label, action:
    ready for Store.add_decisions()."""
    if action not in BULK_VERBS:
        raise ValueError(f"action must be one of {sorted(BULK_VERBS)}, got {action!r}")
    given = filtered["given_id"].to_numpy(dtype=np.int64)
    current = filtered["action"].to_numpy(dtype=object)
    final = filtered["final_id"].to_numpy(dtype=np.int64)
    if action == "accept":
        new = filtered["suggested_id"].to_numpy(dtype=np.int64)
        keep = (new != given) & ~((current == "accept") & (final == new))
        acts = np.full(len(given), "accept", dtype=object)
    elif action == "relabel":
        if label is None or isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise ValueError(f"relabel needs the class id to relabel to, got {label!r}")
        new = np.full(len(given), int(label), dtype=np.int64)
        acts = np.where(given == label, "keep", "relabel").astype(object)
        keep = ~((acts == current) & ((acts == "keep") | (final == new)))
    else:
        new = np.full(len(given), -1, dtype=np.int64)
        acts = np.full(len(given), action, dtype=object)
        keep = current != action
    out_new = [None if a in ("keep", "drop") else int(v) for a, v in zip(acts[keep], new[keep])]
    return pd.DataFrame({
        "sample_index": filtered["sample_index"].to_numpy(dtype=np.int64)[keep],
        "old_label": given[keep],
        "new_label": pd.array(out_new, dtype="Int64") if out_new else pd.array([], dtype="Int64"),
        "action": acts[keep],
    })


def bulk_note(action: str, n: int, selection: str) -> str:
    """The decision log's note of a bulk action on a named selection: "relabelled 37
    samples selected on the map"."""
    if action not in BULK_VERBS:
        raise ValueError(f"action must be one of {sorted(BULK_VERBS)}, got {action!r}")
    return f"{BULK_VERBS[action]} {n:,} sample{'s' if n != 1 else ''} {selection}".strip()


def undo_last_action(store: Any, run_id: str, session: str | None = None) -> list[dict[str, Any]]:
    """Undo the most recent review ACTION -- one decision, or one bulk accept, whole --
    made by `session` (a browser tab; None: by anyone) by appending undo rows (the log
    stays append-only). Never touches another session's decisions. Returns the undone
    decisions (dicts with sample_index, action, ...; [] = nothing to undo)."""
    return store.undo_action(run_id, session=session)


def _samples(items: Sequence[int], most: int = 5) -> str:
    shown = ", ".join(f"#{int(i)}" for i in items[:most])
    return shown + (", …" if len(items) > most else "")


def describe_undo(undone: Sequence[Mapping[str, Any]]) -> str:
    """What an undo did, naming the samples: "Undid the drop on sample #41." /
    "Undid 19 decisions (accept) on samples #3, #5, …"."""
    if not undone:
        return "Nothing to undo."
    if len(undone) == 1:
        d = undone[0]
        return f"Undid the {d['action']} on sample #{int(d['sample_index'])}."
    kinds = sorted({str(d["action"]) for d in undone})
    return (f"Undid {len(undone):,} decisions ({', '.join(kinds)}) on samples "
            f"{_samples([d['sample_index'] for d in undone])}.")


def describe_conflicts(conflicts: Mapping[int, Mapping[str, Any] | None]) -> str:
    """The message for a StaleDecisionError: which samples another tab changed since this
    page showed them, and what they are now."""
    items = list(conflicts.items())
    if len(items) == 1:
        i, now = items[0]
        state = "it has no decision now" if now is None else f"it is now: {now['action']}"
        return (f"Sample #{int(i)} was changed in another tab or session since this page showed it ({state}). "
                "Your decision was not saved: the page now shows the current one; decide again to change it.")
    return (f"{len(items):,} of these samples (#{', #'.join(str(int(i)) for i, _ in items[:5])}"
            f"{', …' if len(items) > 5 else ''}) were changed in another tab or session since this page "
            "showed them. Nothing was saved: the page now shows the current decisions; try again.")
