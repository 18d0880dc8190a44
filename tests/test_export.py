"""Export: cleaned frame, per-class summary, formula escaping, formats, atomic writes."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from selfmix_core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from selfmix_core.export import (
    build_cleaned_frame,
    class_change_summary,
    escape_formula,
    escape_formulas,
    export_bytes,
    write_decision_log,
    write_export,
)

NAMES = ["neg", "pos", "neu"]


@pytest.fixture()
def parts():
    frame = pd.DataFrame(
        {"text": [f"text {i}" for i in range(6)], "label": ["neg", "pos", "neu", "neg", "pos", "neu"]},
        index=list("abcdef"),
    )
    given = np.array([0, 1, 2, 0, 1, 2])
    clean_prob = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.95])
    predicted = np.array([0, 0, 1, 0, 2, 2])
    decisions = {
        1: {"action": "accept", "new_label": 0},
        2: {"action": "relabel", "new_label": 0},
        3: {"action": "keep", "new_label": 0},
        4: {"action": "drop", "new_label": None},
    }
    return frame, given, clean_prob, predicted, decisions


def test_cleaned_frame_values(parts):
    frame, given, prob, pred, dec = parts
    score = np.linspace(0.1, 0.6, 6)
    out = build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5, pred, include_dropped=True, label_score=score)
    assert list(out.columns) == [
        "text", "label", "sample_index", "given_label", "final_label", "action",
        "clean_prob", "is_label_issue", "predicted_label", "label_score",
    ]
    np.testing.assert_allclose(out["label_score"], score)  # its own column, not clean_prob again
    assert list(out["action"]) == ["none", "accept", "relabel", "keep", "drop", "none"]
    assert list(out["given_label"]) == ["neg", "pos", "neu", "neg", "pos", "neu"]
    assert list(out["final_label"])[:4] == ["neg", "neg", "neg", "neg"] and out["final_label"][5] == "neu"
    assert out["final_label"][4] is None or pd.isna(out["final_label"][4])
    assert list(out["is_label_issue"]) == [False, True, True, False, True, False]
    assert list(out["predicted_label"]) == ["neg", "neg", "pos", "neg", "neu", "neu"]
    assert list(out["sample_index"]) == list(range(6))
    assert list(out.index) == list(range(6))
    np.testing.assert_allclose(out["clean_prob"], prob)

    default = build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5)
    assert len(default) == 5 and "drop" not in set(default["action"])
    assert list(default["sample_index"]) == [0, 1, 2, 3, 5]
    assert "predicted_label" not in default.columns


def test_cleaned_frame_says_which_epochs_flags_it_used(parts):
    frame, given, prob, pred, dec = parts
    out = build_cleaned_frame(frame.assign(flags_epoch="mine"), given, NAMES, dec, prob, 0.5, pred, flags_epoch=3)
    assert list(out.columns)[-2:] == ["predicted_label", "flags_epoch"]
    assert (out["flags_epoch"] == 3).all() and list(out["flags_epoch_original"]) == ["mine"] * len(out)
    assert "flags_epoch" not in build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5).columns
    with pytest.raises(ValueError, match="flags_epoch"):
        build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5, flags_epoch=0)


def test_cleaned_frame_unknown_prob_and_clash():
    frame = pd.DataFrame({"text": ["a", "b"], "action": ["x", "y"]})
    out = build_cleaned_frame(frame, np.array([0, 1]), ["a", "b"], {}, None, 0.5)
    assert out["is_label_issue"].isna().all() and out["clean_prob"].isna().all()
    assert list(out["action_original"]) == ["x", "y"] and list(out["action"]) == ["none", "none"]


def test_cleaned_frame_validation(parts):
    frame, given, prob, pred, dec = parts
    with pytest.raises(ValueError, match="given_labels must have shape"):
        build_cleaned_frame(frame, given[:3], NAMES, dec, prob, 0.5)
    with pytest.raises(ValueError, match="class indices"):
        build_cleaned_frame(frame, given + 5, NAMES, dec, prob, 0.5)
    with pytest.raises(ValueError, match="tau"):
        build_cleaned_frame(frame, given, NAMES, dec, prob, 1.5)
    with pytest.raises(ValueError, match="not a sample index"):
        build_cleaned_frame(frame, given, NAMES, {99: {"action": "keep"}}, prob, 0.5)
    with pytest.raises(ValueError, match="new_label of sample 1"):
        build_cleaned_frame(frame, given, NAMES, {1: {"action": "relabel", "new_label": 7}}, prob, 0.5)
    with pytest.raises(ValueError, match="action must be one of"):
        build_cleaned_frame(frame, given, NAMES, {1: {"action": "flip"}}, prob, 0.5)


def test_class_change_summary(parts):
    frame, given, prob, pred, dec = parts
    out = build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5, include_dropped=True)
    s = class_change_summary(out, NAMES).set_index("class")
    assert s.loc["neg"].to_dict() == {
        "n": 2, "flagged": 0, "relabeled_away": 0, "relabeled_into": 2, "kept": 1, "dropped": 0, "final": 4,
    }
    assert s.loc["pos"].to_dict() == {
        "n": 2, "flagged": 2, "relabeled_away": 1, "relabeled_into": 0, "kept": 0, "dropped": 1, "final": 0,
    }
    assert s.loc["neu"].to_dict() == {
        "n": 2, "flagged": 1, "relabeled_away": 1, "relabeled_into": 0, "kept": 0, "dropped": 0, "final": 1,
    }
    assert (s["final"] == s["n"] - s["dropped"] - s["relabeled_away"] + s["relabeled_into"]).all()
    assert s["final"].sum() == 5
    assert list(class_change_summary(out)["class"]) == ["neg", "pos", "neu"]
    with pytest.raises(ValueError, match="lacks columns"):
        class_change_summary(frame)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("-", "'-"),  # a lone dash is escaped too
        ("-5 degrees", "'-5 degrees"),  # legit text: escaped (OWASP: cannot tell it apart)
        ("@x", "'@x"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("", ""),
        (" =2+2", "' =2+2"),  # spreadsheets trim the spaces and run the rest (issue #10 item 9)
        ("  +1", "'  +1"),
        ("\n@SUM(1)", "'\n@SUM(1)"),
        ("\u00a0-1", "'\u00a0-1"),
        (" plain", " plain"),
        (-5, -5),  # numbers are not text: untouched
        (None, None),
    ],
)
def test_escape_formula(value, expected):
    assert escape_formula(value) == expected


def test_escape_formulas_frame():
    df = pd.DataFrame(
        {
            "text": ["=cmd|' /C calc'!A0", "fine", "@SUM(1)"],
            "cat": pd.Categorical(["+x", "y", "+x"]),
            "num": [-1.0, 2.0, 3.0],
            "=head": ["a", "b", "c"],
        }
    )
    out = escape_formulas(df)
    assert list(out["text"]) == ["'=cmd|' /C calc'!A0", "fine", "'@SUM(1)"]
    assert list(out["cat"]) == ["'+x", "y", "'+x"]
    assert list(out["num"]) == [-1.0, 2.0, 3.0]
    assert "'=head" in out.columns
    assert df["text"][0].startswith("=")  # the input is not modified
    csv = export_bytes(df, "csv").decode()
    assert "\n=" not in csv and ",=" not in csv and "'=cmd" in csv


@pytest.fixture()
def sample_df():
    return pd.DataFrame(
        {
            "text": ["héllo, \"world\"", "line\nbreak", "plain"],
            "final_label": ["pos", "neg", "pos"],
            "clean_prob": [0.25, 0.5, 0.75],
            "sample_index": np.array([0, 1, 2], dtype=np.int64),
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_formats_round_trip(tmp_path, sample_df, fmt):
    path = tmp_path / f"out.{fmt}"
    assert write_export(sample_df, path) == path
    if fmt == "csv":
        back = pd.read_csv(path)
    elif fmt == "jsonl":
        back = pd.read_json(path, lines=True)
    else:
        back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, sample_df, check_dtype=False)
    data = export_bytes(sample_df, fmt)
    assert data == path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == [f"out.{fmt}"]  # no temp file left


def test_jsonl_one_object_per_line(sample_df):
    lines = export_bytes(sample_df, "jsonl").decode().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["text"] == 'héllo, "world"'


def test_cleaned_frame_exports(tmp_path, parts):
    frame, given, prob, pred, dec = parts
    out = build_cleaned_frame(frame, given, NAMES, dec, prob, 0.5, pred, include_dropped=True)
    for fmt in ("csv", "jsonl", "parquet"):
        write_export(out, tmp_path / "c", fmt=fmt)
    back = pd.read_parquet(tmp_path / "c")
    assert back["is_label_issue"].tolist() == out["is_label_issue"].tolist()


def test_write_export_validation(tmp_path, sample_df):
    with pytest.raises(ValueError, match="cannot tell the format"):
        write_export(sample_df, tmp_path / "x.xlsx")
    with pytest.raises(ValueError, match="fmt must be one of"):
        export_bytes(sample_df, "xml")
    with pytest.raises(ValueError, match="string column names"):
        export_bytes(pd.DataFrame({0: [1]}), "parquet")


def test_decision_log_csv(tmp_path):
    log = pd.DataFrame(
        {
            "id": [1, 2],
            "time": ["2025-01-01T00:00:00.000+00:00"] * 2,
            "sample_index": [3, 3],
            "old_label": [0, 0],
            "new_label": pd.array([1, pd.NA], dtype="Int64"),
            "action": ["relabel", "undo"],
            "undoes": pd.array([pd.NA, 1], dtype="Int64"),
        }
    )
    path = write_decision_log(log, tmp_path / "log.csv")
    back = pd.read_csv(path)
    assert back["action"].tolist() == ["relabel", "undo"] and back["undoes"].isna().tolist() == [True, False]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half-written")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    atomic_write_text(tmp_path / "sub" / "t.txt", "héllo")
    assert (tmp_path / "sub" / "t.txt").read_text(encoding="utf-8") == "héllo"
    with atomic_path(tmp_path / "a.npz") as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        np.savez(tmp, x=np.arange(3))
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="bytes"):
        atomic_write_bytes(target, "text")  # type: ignore[arg-type]


def test_export_bytes_csv_is_utf8(sample_df):
    data = export_bytes(sample_df, "csv")
    back = pd.read_csv(io.BytesIO(data))
    assert back["text"][0] == 'héllo, "world"'


def test_numeric_label_columns_can_be_written_as_numbers(tmp_path):
    """The trade-off of the formula escaping: labels such as -1 come out as '-1. A column
    named in plain_numeric_columns is written as it is when every value is a plain number."""
    df = pd.DataFrame({
        "text": ["-5 degrees", " =2+2", "fine"],
        "label": ["-1", "1", "-1"],
        "given_label": ["-1", "+1", "1e3"],
        "final_label": ["-1", "=1+1", "1"],  # not all plain numbers: escaped as a whole
        "num": [-1.0, 2.0, 3.0],
    })
    escaped = pd.read_csv(io.BytesIO(export_bytes(df, "csv")), dtype=str)
    assert escaped["label"].tolist() == ["'-1", "1", "'-1"] and escaped["given_label"][1] == "'+1"
    plain = ["label", "given_label", "final_label"]
    out = pd.read_csv(io.BytesIO(export_bytes(df, "csv", plain_numeric_columns=plain)), dtype=str)
    assert out["label"].tolist() == ["-1", "1", "-1"] and out["given_label"].tolist() == ["-1", "+1", "1e3"]
    assert out["final_label"].tolist() == ["'-1", "'=1+1", "1"]
    assert out["text"].tolist() == ["'-5 degrees", "' =2+2", "fine"]  # other columns: escaped as always
    assert out["num"].tolist() == ["-1.0", "2.0", "3.0"]
    write_export(df, tmp_path / "s.csv", plain_numeric_columns=plain)
    assert (tmp_path / "s.csv").read_bytes() == export_bytes(df, "csv", plain_numeric_columns=plain)
    assert export_bytes(df, "jsonl", plain_numeric_columns=plain) == export_bytes(df, "jsonl")
    with pytest.raises(ValueError, match="names columns the frame lacks: \\['nope'\\]"):
        export_bytes(df, "csv", plain_numeric_columns=["nope"])
    with pytest.raises(ValueError, match="must be a list of column names"):
        export_bytes(df, "csv", plain_numeric_columns="label")
