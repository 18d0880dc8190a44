"""Export: turn a dataset plus the review decisions into a cleaned dataset with an
audit trail, and write it (CSV / JSON Lines / Parquet) safely.

`build_cleaned_frame` adds the audit columns to the original frame,
`class_change_summary` counts what the review changed per class, and
`write_export` / `export_bytes` serialise a frame. CSV output is escaped against
formula injection (OWASP "CSV Injection"): every string cell (and header) that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return, also after leading
spaces (" =2+2": spreadsheets trim them), gets a leading `'`, so a spreadsheet
shows it as text instead of running it. That includes harmless text such as
"-5 degrees" or "-" (the OWASP recommendation: the prefix cannot tell them apart);
numeric columns are not touched, so a real number -5 stays -5.

The trade-off: a label column of text such as "-1" (labels read from a file are
text) comes out as "'-1". `plain_numeric_columns` names columns to write as they
are when every value in them is a plain number ("-1", "+2", "0.5", "1e3"), which
no spreadsheet runs as anything but a number; any other value in such a column
keeps the whole column escaped. The Export page and the CLI
(`--plain-numeric-labels`) pass the label columns.
JSON Lines and Parquet are never escaped (they are not opened as spreadsheets).
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write_bytes

__all__ = [
    "ADDED_COLUMNS",
    "EXPORT_FORMATS",
    "EXPORT_MIME",
    "FORMULA_PREFIXES",
    "build_cleaned_frame",
    "class_change_summary",
    "escape_formula",
    "escape_formulas",
    "export_bytes",
    "write_decision_log",
    "write_export",
]

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
EXPORT_MIME = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_AFTER_SPACES = ("=", "+", "-", "@")  # " =1" runs once a spreadsheet trims the spaces
# A plain number: what a spreadsheet can only read as a number (ASCII digits).
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# Columns build_cleaned_frame adds after the original ones, in this order.
ADDED_COLUMNS = (
    "sample_index",
    "given_label",
    "final_label",
    "action",
    "clean_prob",
    "is_label_issue",
    "predicted_label",
    "label_score",
    "predicted_prob",
    "top1_label",
    "top1_prob",
    "top2_label",
    "top2_prob",
    "top3_label",
    "top3_prob",
    "flags_epoch",
    "is_near_duplicate",
    "near_duplicate_group",
    "is_outlier",
    "outlier_score",
)
ISSUE_COLUMNS = ("is_near_duplicate", "near_duplicate_group", "is_outlier", "outlier_score")
_ACTIONS = ("relabel", "accept", "keep", "drop")
_RELABELS = ("relabel", "accept")


# ---- validation helpers ------------------------------------------------------------------


def _labels_array(values: Any, what: str, n: int, k: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},) (one per frame row), got {arr.shape}")
    if n and not (np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(
            f"{what} must be class indices in [0, {k - 1}] (len(label_names) = {k}), "
            f"got values in [{arr.min()}, {arr.max()}]"
        )
    return arr


def _as_class_index(v: Any, what: str, k: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
        raise ValueError(f"{what} must be a class index, got {v!r}")
    if isinstance(v, (float, np.floating)) and not (math.isfinite(v) and float(v).is_integer()):
        raise ValueError(f"{what} must be a class index, got {v!r}")
    i = int(v)
    if not 0 <= i < k:
        raise ValueError(f"{what} = {i} is not a class index in [0, {k - 1}]")
    return i


def _free_name(name: str, taken: set[str]) -> str:
    cand = f"{name}_original"
    i = 2
    while cand in taken:
        cand = f"{name}_original{i}"
        i += 1
    return cand


# ---- cleaned frame -----------------------------------------------------------------------------


def build_cleaned_frame(
    frame: pd.DataFrame,
    given_labels: np.ndarray,
    label_names: Sequence[str],
    decisions: Mapping[int, Mapping[str, Any]],
    clean_prob: np.ndarray | None,
    tau: float,
    predicted_labels: np.ndarray | None = None,
    include_dropped: bool = False,
    flags_epoch: int | None = None,
    predicted_prob: np.ndarray | None = None,
    top3_labels: np.ndarray | None = None,
    top3_probs: np.ndarray | None = None,
    label_score: np.ndarray | None = None,
    issues: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The original frame plus the audit columns, one row per sample (N rows in).

    frame: (N, C) the dataset as imported, row i = sample i.
    given_labels: (N,) int class indices the model was trained against.
    label_names: K class names; index k names class k.
    decisions: {sample_index: {"action": "relabel"|"accept"|"keep"|"drop",
        "new_label": int | None, ...}} as returned by Store.current_decisions().
    clean_prob: (N,) float GMM clean probability (lower = more likely mislabeled) or None.
    tau: flag threshold in (0, 1): is_label_issue = clean_prob < tau.
    predicted_labels: (N,) int model predictions, or None (then no predicted_label column).
    include_dropped: keep dropped rows (action "drop") in the output; default removes them.
    flags_epoch: the epoch whose clean_prob / predictions these are, or None (then no
        flags_epoch column): the audit trail of which epoch's flags were used.
    predicted_prob: (N,) the model's probability of its prediction, or None (no column).
    top3_labels / top3_probs: (N, 3) the model's three most probable classes (ids, -1 =
        unknown) and their probabilities (EpochReport.top3_*), or None (no columns).
        Together they give the columns top1_label, top1_prob, ..., top3_label,
        top3_prob (names; None / NaN where unknown), like the CLI's samples.csv.
    label_score: (N,) the model's probability of the given label (EpochReport.label_score,
        lower = more likely mislabeled; NaN = unknown), or None (no column).
    issues: (N rows) the columns is_near_duplicate, near_duplicate_group, is_outlier,
        outlier_score (selfmix_core.explore.issue_columns), or None (no such columns).

    Returns a frame with RangeIndex and the original columns followed by
    sample_index (position in the dataset), given_label (name), final_label (name
    after the decision; the given name without one or for "keep"; None for "drop"),
    action ("none", "relabel", "accept", "keep", "drop"), clean_prob (float, NaN if
    unknown), is_label_issue (nullable boolean, NA when clean_prob is unknown),
    predicted_label (name) when predictions are given and flags_epoch (int, the same
    in every row) when given. An original column whose
    name clashes with an added one is renamed "<name>_original".
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    n = len(frame)
    if isinstance(label_names, str) or not isinstance(label_names, Sequence) or len(label_names) < 1:
        raise ValueError("label_names must be a non-empty list of class names")
    names = [str(x) for x in label_names]
    if len(set(names)) != len(names):
        raise ValueError(f"label_names must be unique, got {names}")
    k = len(names)
    given = _labels_array(given_labels, "given_labels", n, k)
    if not isinstance(tau, (int, float, np.floating)) or isinstance(tau, bool) or not 0.0 < float(tau) < 1.0:
        raise ValueError(f"tau must be a number strictly between 0 and 1, got {tau!r}")
    tau = float(tau)
    if clean_prob is None:
        prob = np.full(n, np.nan, dtype=np.float64)
    else:
        prob = np.asarray(clean_prob, dtype=np.float64)
        if prob.shape != (n,):
            raise ValueError(f"clean_prob must have shape ({n},) (one per frame row), got {prob.shape}")
        finite = prob[np.isfinite(prob)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError("clean_prob must be probabilities in [0, 1] (NaN allowed for unknown)")
    pred = None if predicted_labels is None else _labels_array(predicted_labels, "predicted_labels", n, k)
    if flags_epoch is not None and (isinstance(flags_epoch, (bool, np.bool_))
                                    or not isinstance(flags_epoch, (int, np.integer)) or flags_epoch < 1):
        raise ValueError(f"flags_epoch must be an epoch number (1-based), got {flags_epoch!r}")
    if not isinstance(decisions, Mapping):
        raise ValueError(f"decisions must be a dict {{sample_index: decision}}, got {type(decisions).__name__}")

    final = given.copy()
    action = np.full(n, "none", dtype=object)
    for key, dec in decisions.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) or not 0 <= key < n:
            raise ValueError(f"decision key {key!r} is not a sample index in [0, {n - 1}]")
        if not isinstance(dec, Mapping) or "action" not in dec:
            raise ValueError(f"decision for sample {key} must be a dict with an 'action', got {dec!r}")
        act = dec["action"]
        if act not in _ACTIONS:
            raise ValueError(f"decision for sample {key}: action must be one of {_ACTIONS}, got {act!r}")
        if act in _RELABELS:
            final[key] = _as_class_index(dec.get("new_label"), f"new_label of sample {key}", k)
        action[key] = act

    out = frame.reset_index(drop=True).copy()
    pprob = _optional_prob(predicted_prob, "predicted_prob", (n,))
    lscore = _optional_prob(label_score, "label_score", (n,))
    if (top3_labels is None) != (top3_probs is None):
        raise ValueError("top3_labels and top3_probs come together (both or neither)")
    top_ids = top_p = None
    if top3_labels is not None:
        top_ids = np.asarray(top3_labels)
        if top_ids.shape != (n, 3) or not np.issubdtype(top_ids.dtype, np.integer):
            raise ValueError(f"top3_labels must be ({n}, 3) integer class ids, got {top_ids.shape} {top_ids.dtype}")
        if top_ids.size and (top_ids.min() < -1 or top_ids.max() >= k):
            raise ValueError(f"top3_labels must be class ids in [0, {k - 1}] (or -1 for unknown)")
        top_p = _optional_prob(top3_probs, "top3_probs", (n, 3))
    if issues is not None:
        if not isinstance(issues, pd.DataFrame) or len(issues) != n \
                or any(c not in issues.columns for c in ISSUE_COLUMNS):
            raise ValueError(f"issues must be a DataFrame of {n} rows with columns {list(ISSUE_COLUMNS)}")
    optional = {"predicted_label": pred is not None, "flags_epoch": flags_epoch is not None,
                "label_score": lscore is not None, "predicted_prob": pprob is not None}
    optional.update({f"top{j}_{w}": top_ids is not None for j in (1, 2, 3) for w in ("label", "prob")})
    optional.update({c: issues is not None for c in ISSUE_COLUMNS})
    added = [c for c in ADDED_COLUMNS if optional.get(c, True)]
    taken = {str(c) for c in out.columns} | set(added)
    renames = {}
    for c in out.columns:
        if c in added:
            new = _free_name(str(c), taken)
            taken.add(new)
            renames[c] = new
    if renames:
        out = out.rename(columns=renames)

    names_arr = np.asarray(names, dtype=object)
    dropped = action == "drop"
    final_names = names_arr[final].copy()
    final_names[dropped] = None
    out["sample_index"] = np.arange(n, dtype=np.int64)
    out["given_label"] = names_arr[given]
    out["final_label"] = final_names
    out["action"] = action
    out["clean_prob"] = prob
    flag = pd.array(prob < tau, dtype="boolean")
    flag[np.isnan(prob)] = pd.NA
    out["is_label_issue"] = flag
    if pred is not None:
        out["predicted_label"] = names_arr[pred]
    if lscore is not None:
        out["label_score"] = lscore
    if pprob is not None:
        out["predicted_prob"] = pprob
    if top_ids is not None:
        with_none = np.append(names_arr, None)  # id -1 = unknown
        for j in range(3):
            out[f"top{j + 1}_label"] = with_none[top_ids[:, j]]
            out[f"top{j + 1}_prob"] = np.where(top_ids[:, j] >= 0, top_p[:, j], np.nan)
    if flags_epoch is not None:
        out["flags_epoch"] = np.full(n, int(flags_epoch), dtype=np.int64)
    if issues is not None:
        for c in ISSUE_COLUMNS:
            out[c] = issues[c].reset_index(drop=True).array
    if not include_dropped:
        out = out.loc[~dropped].reset_index(drop=True)
    return out


def _optional_prob(values, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """`values` as float probabilities of `shape` (NaN allowed), or None when None."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    finite = arr[np.isfinite(arr)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError(f"{name} must be probabilities in [0, 1] (NaN allowed for unknown)")
    return arr


def class_change_summary(cleaned: pd.DataFrame, label_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per given class, what the review changed. One row per class.

    cleaned: a build_cleaned_frame() result; build it with include_dropped=True,
        otherwise dropped rows are already gone and count as 0.
    label_names: row order (defaults to the classes in order of first appearance).

    Columns: class, n (rows with this given label), flagged (of those, is_label_issue),
    relabeled_away (relabel/accept to another class), relabeled_into (relabel/accept
    from another class into this one), kept, dropped, final (rows ending with this
    label, dropped excluded) = n - dropped - relabeled_away + relabeled_into.
    """
    if not isinstance(cleaned, pd.DataFrame):
        raise ValueError(f"cleaned must be a DataFrame, got {type(cleaned).__name__}")
    need = ["given_label", "final_label", "action", "is_label_issue"]
    missing = [c for c in need if c not in cleaned.columns]
    if missing:
        raise ValueError(f"cleaned lacks columns {missing}; pass the frame build_cleaned_frame() returns")
    given = cleaned["given_label"].astype(object).to_numpy()
    final = cleaned["final_label"].astype(object).to_numpy()
    action = cleaned["action"].astype(object).to_numpy()
    flagged = cleaned["is_label_issue"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if label_names is None:
        seen: dict[Any, None] = {}
        for v in list(given) + [f for f in final if f is not None and not pd.isna(f)]:
            seen.setdefault(v, None)
        classes = list(seen)
    else:
        classes = [str(c) for c in label_names]
    relabel = np.isin(action, _RELABELS)
    dropped = action == "drop"
    moved = relabel & (given != final)
    rows = []
    for c in classes:
        is_c = given == c
        ends_c = (final == c) & ~dropped
        rows.append(
            {
                "class": c,
                "n": int(is_c.sum()),
                "flagged": int((is_c & flagged).sum()),
                "relabeled_away": int((is_c & moved).sum()),
                "relabeled_into": int((ends_c & moved).sum()),
                "kept": int((is_c & (action == "keep")).sum()),
                "dropped": int((is_c & dropped).sum()),
                "final": int(ends_c.sum()),
            }
        )
    cols = ["class", "n", "flagged", "relabeled_away", "relabeled_into", "kept", "dropped", "final"]
    return pd.DataFrame(rows, columns=cols)


# ---- formula escaping -------------------------------------------------------------------------


def escape_formula(value: Any) -> Any:
    """A string starting with = + - @ tab or CR, or with = + - @ after leading whitespace
    (" =2+2": spreadsheets trim it and run the rest), gets a leading "'"; anything else is
    returned unchanged (numbers, None, NaN, and strings such as "a=b")."""
    if isinstance(value, str) and (value.startswith(FORMULA_PREFIXES) or value.lstrip().startswith(_AFTER_SPACES)):
        return "'" + value
    return value


def _plain_numbers(col: pd.Series) -> bool:
    """Whether every non-missing cell of col is a number or a string that is a plain number."""
    values = col.dropna()
    if values.empty:
        return True
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return True
    return all(
        _PLAIN_NUMBER.fullmatch(v) is not None if isinstance(v, str)
        else isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in values.astype(object)
    )


def _check_plain_columns(df: pd.DataFrame, plain_numeric_columns: Any) -> set:
    if isinstance(plain_numeric_columns, str) or not isinstance(plain_numeric_columns, (Sequence, set, frozenset)):
        raise ValueError(
            f"plain_numeric_columns must be a list of column names, got {plain_numeric_columns!r}"
        )
    missing = [c for c in plain_numeric_columns if c not in df.columns]
    if missing:
        raise ValueError(f"plain_numeric_columns names columns the frame lacks: {missing[:5]!r}; "
                         f"its columns are {list(df.columns)[:20]!r}")
    return set(plain_numeric_columns)


def escape_formulas(df: pd.DataFrame, plain_numeric_columns: Sequence[str] = ()) -> pd.DataFrame:
    """A copy of df with escape_formula applied to every string cell and column name.

    plain_numeric_columns: columns left as they are when every value in them is a plain
    number (such as labels "-1", "0", "1"); a column holding anything else is escaped.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    plain = _check_plain_columns(df, plain_numeric_columns)
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        elif not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
            continue
        if out.columns[i] in plain and _plain_numbers(col):
            continue
        out.isetitem(i, col.map(escape_formula))
    out.columns = [escape_formula(c) for c in out.columns]
    return out


# ---- writing ------------------------------------------------------------------------------------


def _check_fmt(fmt: Any) -> str:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {EXPORT_FORMATS}, got {fmt!r}")
    return fmt


def export_bytes(df: pd.DataFrame, fmt: str, plain_numeric_columns: Sequence[str] = ()) -> bytes:
    """df serialised as fmt ("csv" UTF-8 formula-escaped, "jsonl" one JSON object per row,
    "parquet"); the index is not written. For a browser download button.
    plain_numeric_columns: CSV only, see escape_formulas."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    _check_fmt(fmt)
    _check_plain_columns(df, plain_numeric_columns)
    if fmt == "csv":
        # CRLF row ends (RFC 4180): the csv writer quotes a cell holding any character of
        # the line terminator, so a text with a bare "\r" is quoted too. With "\n" alone
        # such a cell went out unquoted and split its row in two when read back.
        return escape_formulas(df, plain_numeric_columns).to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    if fmt == "jsonl":
        if len(df) == 0:
            return b""
        text = df.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
        return (text if text.endswith("\n") else text + "\n").encode("utf-8")
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise ValueError(f"Parquet needs string column names, got {bad[:5]!r}; rename them first")
    buf = io.BytesIO()
    try:
        df.to_parquet(buf, index=False)
    except Exception as e:  # pyarrow raises its own exception types
        raise ValueError(f"could not write Parquet ({e}); make each column one type") from None
    return buf.getvalue()


def write_export(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    plain_numeric_columns: Sequence[str] = (),
) -> Path:
    """Write df to path atomically as fmt (None: from the suffix .csv / .jsonl / .parquet).
    plain_numeric_columns: CSV only, see escape_formulas. Returns the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file path, got {type(path).__name__}")
    path = Path(path)
    if fmt is None:
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(
                f"cannot tell the format from {path.name!r}; give fmt= one of {EXPORT_FORMATS} "
                "or use a .csv / .jsonl / .parquet file name"
            )
    data = export_bytes(df, fmt, plain_numeric_columns)
    return atomic_write_bytes(path, data)


def write_decision_log(log_df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the decision log (Store.decision_log()) as CSV, atomically, formula-escaped."""
    if not isinstance(log_df, pd.DataFrame):
        raise ValueError(f"log_df must be a pandas DataFrame, got {type(log_df).__name__}")
    return write_export(log_df, path, "csv")
