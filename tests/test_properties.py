"""Property-based tests (hypothesis) for the loaders (issue #5, item 1).

* Round trip: any table of (non-blank) texts and labels written as CSV, TSV, JSONL or
  Parquet loads to the SAME TextDataset as the table itself, texts verbatim.
* Arbitrary bytes, under any format and behind any compression magic number, raise
  nothing but DataValidationError / ValueError (never a parser's own exception type).
* Label mapping invariants: ids in 0..K-1, every derived class present, equal labels
  <-> equal ids, names sorted (numerically for integer labels), a test set mapped into
  the train set's names or refused naming the unknown labels.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from selfmix_core.data import DataValidationError, TextDataset, dataset_from_frame, load_dataset, read_table
from selfmix_core.export import escape_formula, export_bytes

# A few seconds in the suite; SELFMIX_HYPOTHESIS_EXAMPLES=2000 searches harder. No example
# database: nothing is written into the repository.
SETTINGS = settings(deadline=None, max_examples=int(os.environ.get("SELFMIX_HYPOTHESIS_EXAMPLES", "60")),
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# Texts: any Unicode except lone surrogates (not encodable as UTF-8), with something
# that is not whitespace (a blank text is refused by design).
texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(lambda t: t.strip() != "")
# Labels: no surrounding whitespace (the loader strips it), not blank.
word_labels = st.text(st.characters(exclude_categories=("Cs", "Z", "Cc")), min_size=1, max_size=12).filter(
    lambda t: t == t.strip() and t != ""
)
int_labels = st.integers(min_value=-5, max_value=10**6)


@st.composite
def tables(draw) -> pd.DataFrame:
    """2..30 rows with at least two classes and fewer distinct labels than rows."""
    pool = draw(st.lists(st.one_of(word_labels, int_labels.map(str)), min_size=2, max_size=5, unique=True))
    n = draw(st.integers(min_value=max(3, len(pool) + 1), max_value=30))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=n, max_size=n))
    picks[0], picks[1] = 0, 1
    rows = draw(st.lists(texts, min_size=n, max_size=n))
    return pd.DataFrame({"text": rows, "label": [pool[i] for i in picks]})


def serialise(df: pd.DataFrame, fmt: str) -> bytes:
    # CRLF row ends: with pandas' default "\n" a cell holding a bare "\r" is not quoted,
    # and no reader can tell it from a row end (the bug export.py had; see below).
    if fmt == "csv":
        return df.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    if fmt == "tsv":
        return df.to_csv(index=False, sep="\t", lineterminator="\r\n").encode("utf-8")
    if fmt == "jsonl":
        return df.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def same(a: TextDataset, b: TextDataset) -> None:
    assert a.texts == b.texts
    assert a.label_names == b.label_names
    assert a.labels.tolist() == b.labels.tolist()


def outcome(fn):
    """("ok", dataset) or ("error", sorted problem kinds) -- messages differ only by source."""
    try:
        return "ok", fn()
    except DataValidationError as exc:
        return "error", len(exc.problems)


@SETTINGS
@given(df=tables())
def test_every_format_round_trips_to_the_same_dataset(df):
    kind, expected = outcome(lambda: dataset_from_frame(df))
    for fmt in ("csv", "tsv", "jsonl", "parquet"):
        got_kind, got = outcome(lambda: load_dataset(io.BytesIO(serialise(df, fmt)), fmt=fmt))
        assert got_kind == kind, (fmt, got)
        if kind == "ok":
            same(got, expected)
            assert got.texts == df["text"].tolist()  # verbatim, whatever the characters
        else:
            assert got == expected
    if kind == "ok":  # compressed, and with a UTF-8 BOM, it is still the same dataset
        raw = serialise(df, "csv")
        same(load_dataset(io.BytesIO(gzip.compress(b"\xef\xbb\xbf" + raw)), fmt="csv"), expected)


@SETTINGS
@given(df=tables())
def test_exported_csv_reads_back_row_for_row(df):
    """The app's CSV export, read back: the same rows, each cell formula-escaped."""
    back = read_table(io.BytesIO(export_bytes(df, "csv")), fmt="csv")
    assert len(back) == len(df)
    assert back["text"].tolist() == [escape_formula(t) for t in df["text"]]
    assert back["label"].tolist() == [escape_formula(t) for t in df["label"]]


@SETTINGS
@given(df=tables())
def test_label_mapping_invariants(df):
    try:
        ds = dataset_from_frame(df)
    except DataValidationError as exc:
        # the only refusal possible for these tables: labels that are all numbers and
        # collapse into one class ("1" and "01" are the same integer label)
        assert any("only one class" in p for p in exc.problems), exc.problems
        return
    k = ds.num_classes
    labels = df["label"].tolist()
    assert k >= 2 and len(set(ds.label_names)) == k
    assert ds.labels.dtype == np.int64 and ds.labels.min() >= 0 and ds.labels.max() < k
    assert set(ds.labels.tolist()) == set(range(k))  # every derived class is present
    numeric = pd.to_numeric(pd.Series(labels), errors="coerce")
    if numeric.notna().all():  # integer labels: names are the sorted distinct integers
        values = numeric.astype(np.int64).tolist()
        assert ds.label_names == [str(v) for v in sorted(set(values))]
        assert [int(ds.label_names[i]) for i in ds.labels] == values
    else:  # names are the sorted distinct strings; each row maps back to its own label
        assert ds.label_names == sorted(set(labels))
        assert [ds.label_names[i] for i in ds.labels] == labels
    for i in range(len(labels)):  # equal labels <-> equal ids
        for j in range(i + 1, len(labels)):
            assert (labels[i] == labels[j]) <= (ds.labels[i] == ds.labels[j])
    # the same rows as a test set in the train set's label space: the same ids, any order
    perm = np.random.default_rng(0).permutation(len(df))
    mapped = dataset_from_frame(df.iloc[perm].reset_index(drop=True), label_names=ds.label_names)
    assert mapped.label_names == ds.label_names
    assert mapped.labels.tolist() == ds.labels[perm].tolist()


@SETTINGS
@given(df=tables(), extra=word_labels.filter(lambda s: not s.lstrip("-").isdigit()))
def test_unknown_test_labels_are_named(df, extra):
    try:
        train = dataset_from_frame(df)
    except DataValidationError:
        return
    assume(extra not in train.label_names)
    test = pd.DataFrame({"text": ["x", "y", "z"], "label": [train.label_names[0], extra, extra]})
    with pytest.raises(DataValidationError) as info:
        dataset_from_frame(test, label_names=train.label_names)
    assert repr(extra) in str(info.value) and "rows 2, 3" in str(info.value)


MAGIC = [b"", b"\x1f\x8b\x08\x00", b"PK\x03\x04", b"\xfd7zXZ\x00", b"BZh9", b"\xef\xbb\xbf", b"PAR1",
         b"text,label\n", b"text\tlabel\n", b'{"text": ', b"["]
FORMATS = ["csv", "tsv", "jsonl", "json", "parquet", "txt", None]


@SETTINGS
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=300), fmt=st.sampled_from(FORMATS))
def test_arbitrary_bytes_raise_only_validation_errors(prefix, body, fmt):
    data = prefix + body
    upload = io.BytesIO(data)
    upload.name = "upload.bin" if fmt is None else f"upload.{fmt}"
    try:
        ds = load_dataset(upload, fmt=fmt)
    except (DataValidationError, ValueError):
        return
    check_dataset(ds)


# Text built from the characters that make CSV/JSON parsers stumble.
NASTY = st.text(st.sampled_from(list(',;\t"\'\n\r\\ {}[]:#=+-@\x00aA1.é😀\u2028\x85')), max_size=200)


@SETTINGS
@given(body=NASTY, fmt=st.sampled_from(["csv", "tsv", "jsonl", "json"]), header=st.booleans(),
       wrap=st.sampled_from([None, "gzip", "zip"]))
def test_structured_garbage_raises_only_validation_errors(body, fmt, header, wrap):
    text = ("text,label\n" if fmt == "csv" else "text\tlabel\n" if fmt == "tsv" else "") * header + body
    data = text.encode("utf-8")
    if wrap == "gzip":
        data = gzip.compress(data)
    elif wrap == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(f"inner.{fmt}", data)
        data = buf.getvalue()
    try:
        table = read_table(io.BytesIO(data), fmt=fmt)
    except (DataValidationError, ValueError):
        return
    assert len(table) >= 1
    try:
        ds = dataset_from_frame(table)
    except DataValidationError:
        return
    check_dataset(ds)


def check_dataset(ds: TextDataset) -> None:
    n = len(ds)
    assert n >= 2 and ds.num_classes >= 2 and len(ds.labels) == n and len(ds.frame) == n
    assert all(isinstance(t, str) and t.strip() for t in ds.texts)
    assert ds.labels.min() >= 0 and ds.labels.max() < ds.num_classes
