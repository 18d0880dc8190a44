"""selfmix_core.data: reading every format, label mapping, and one clear error per bad input."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest

from selfmix_core.data import (
    DataValidationError,
    TextDataset,
    dataset_from_frame,
    load_dataset,
    load_label_names,
    read_table,
)

TEXTS = [
    "plain text",
    'has, a comma and "quotes"',
    "two\nlines",
    "emoji 😀🎉",
    "עברית מימין לשמאל",
    "tab\tinside",
    "x" * 5000,
    "  leading and trailing spaces  ",
]
LABELS = ["pos", "neg", "neg", "pos", "neu", "pos", "neg", "neu"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS, "label": LABELS})


def _write(df: pd.DataFrame, path) -> None:
    name = str(path)
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")


def _csv(tmp_path, content: str | bytes, name: str = "data.csv"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _error(tmp_path, content, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load_dataset(_csv(tmp_path, content), **kwargs)
    return info.value


# ---- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "parquet", "csv.gz"])
def test_round_trip_each_format(tmp_path, ext):
    path = tmp_path / f"train.{ext}"
    if ext == "csv.gz":
        path.write_bytes(gzip.compress(_frame().to_csv(index=False).encode("utf-8")))
    else:
        _write(_frame(), path)
    ds = load_dataset(path)
    assert ds.texts == TEXTS  # verbatim: commas, quotes, newlines, emoji, RTL, tabs, spaces
    assert ds.label_names == ["neg", "neu", "pos"]
    assert [ds.label_names[i] for i in ds.labels] == LABELS
    assert ds.labels.dtype == np.int64 and ds.true_labels is None
    assert list(ds.frame.columns) == ["id", "text", "label"] and len(ds.frame) == len(TEXTS)
    assert ds.source == f"train.{ext}" and ds.num_classes == 3 and len(ds) == len(TEXTS)


def test_upload_file_like_with_fmt():
    raw = _frame().to_csv(index=False, sep="\t").encode("utf-8")
    ds = load_dataset(io.BytesIO(raw), fmt="tsv")
    assert ds.texts == TEXTS
    table = read_table(io.BytesIO(_frame().to_json(orient="records", lines=True).encode()), fmt="jsonl")
    assert list(table.columns) == ["id", "text", "label"]


def test_json_array_and_txt_tab(tmp_path):
    (tmp_path / "a.json").write_text(_frame().to_json(orient="records"), encoding="utf-8")
    assert load_dataset(tmp_path / "a.json").texts == TEXTS
    (tmp_path / "b.txt").write_text("text\tlabel\nhello\tx\nworld\ty\n", encoding="utf-8")
    assert load_dataset(tmp_path / "b.txt").texts == ["hello", "world"]


# ---- label mapping ------------------------------------------------------------------


def test_string_labels_sorted_names():
    ds = dataset_from_frame(pd.DataFrame({"text": ["a", "b", "c"], "label": ["world", "biz", "world"]}))
    assert ds.label_names == ["biz", "world"]
    assert ds.labels.tolist() == [1, 0, 1]


def test_integer_labels_from_csv_renumbered(tmp_path):
    ds = load_dataset(_csv(tmp_path, "text,label\na,7\nb,3\nc,7\nd,3\n"))
    assert ds.label_names == ["3", "7"]
    assert ds.labels.tolist() == [1, 0, 1, 0]
    assert ds.warnings == []
    ds = load_dataset(_csv(tmp_path, "text,label\na,10\nb,-1\nc,2\nd,10\n"))
    assert ds.label_names == ["-1", "2", "10"]  # integers sort as numbers


def test_labels_keep_their_exact_text(tmp_path):
    """Issue #10 item 4: "01", "1" and "001" were merged into class "1", the integer
    18446744073709551615 became -1, and a 1e400 label was reported as missing."""
    ds = load_dataset(_csv(tmp_path, "text,label\na,01\nb,1\nc,001\nd,2\ne,1\n"))
    assert ds.label_names == ["001", "01", "1", "2"]
    assert [ds.label_names[i] for i in ds.labels] == ["01", "1", "001", "2", "1"]
    assert "writes the same number in different ways: '01' and '1' and '001'" in ds.warnings[0]
    ds = load_dataset(_csv(tmp_path, "text,label\na,7\nb,3\nc,7.0\nd,3\n"))
    assert ds.label_names == ["3", "7", "7.0"] and "'7' and '7.0'" in ds.warnings[0]
    big = 18446744073709551615
    ds = load_dataset(_csv(tmp_path, f"text,label\na,{big}\nb,1\nc,{big}\n"))
    assert ds.label_names == ["1", str(big)] and ds.labels.tolist() == [1, 0, 1]
    ds = dataset_from_frame(pd.DataFrame({"text": list("abc"), "label": np.array([big, 1, big], dtype=np.uint64)}))
    assert ds.label_names == ["1", str(big)] and ds.labels.tolist() == [1, 0, 1]
    ds = load_dataset(_csv(tmp_path, "text,label\na,1e400\nb,1\nc,1e400\nd,1\n"))
    assert ds.label_names == ["1", "1e400"] and ds.warnings == []
    with pytest.raises(DataValidationError) as info:
        dataset_from_frame(pd.DataFrame({"text": list("abc"), "label": [np.inf, 1.0, 2.0]}))
    assert "too large (or infinite)" in str(info.value) and "(row 1)" in str(info.value)
    assert "missing" not in str(info.value)
    ds = load_dataset(_csv(tmp_path, "text,label\na, pos\nb,pos\nc,neg\n"))
    assert ds.label_names == ["neg", "pos"] and "spaces around them in 1 row (row 1)" in ds.warnings[0]
    assert "' pos' -> 'pos'" in ds.warnings[0]


def test_integer_labels_with_label_names_are_ids():
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": [2, 0, 2]})
    ds = dataset_from_frame(df, label_names=["neg", "neu", "pos"])
    assert ds.labels.tolist() == [2, 0, 2] and ds.label_names == ["neg", "neu", "pos"]


def test_labels_txt_beside_file(tmp_path):
    (tmp_path / "labels.txt").write_text("neg\nneu\npos\n", encoding="utf-8")
    path = _csv(tmp_path, "text,label\na,2\nb,0\nc,2\n")
    assert load_label_names(path) == ["neg", "neu", "pos"]
    ds = load_dataset(path)
    assert ds.label_names == ["neg", "neu", "pos"] and ds.labels.tolist() == [2, 0, 2]
    # too few lines for the largest id: labels.txt is ignored
    ds = load_dataset(_csv(tmp_path, "text,label\na,5\nb,0\n"))
    assert ds.label_names == ["0", "5"]
    assert load_label_names(tmp_path / "sub" / "x.csv") is None


def test_test_set_mapped_with_train_names(tmp_path):
    train = load_dataset(_csv(tmp_path, "text,label\na,sports\nb,world\nc,biz\n", "train.csv"))
    test = load_dataset(
        _csv(tmp_path, "text,label\nx,world\ny,sports\n", "test.csv"), label_names=train.label_names
    )
    assert test.label_names == ["biz", "sports", "world"] and test.labels.tolist() == [2, 1]
    # integer train labels 3/7 became names "3"/"7": the test set matches them by name
    train = load_dataset(_csv(tmp_path, "text,label\na,3\nb,7\n", "train2.csv"))
    test = load_dataset(_csv(tmp_path, "text,label\nx,7\ny,7\n", "test2.csv"), label_names=train.label_names)
    assert test.labels.tolist() == [1, 1]


def test_true_label_column(tmp_path):
    ds = load_dataset(
        _csv(tmp_path, "text,label,gold\na,pos,pos\nb,neg,pos\nc,neg,neg\n"), true_label_column="gold"
    )
    assert ds.labels.tolist() == [1, 0, 0] and ds.true_labels.tolist() == [1, 1, 0]
    err = _error(tmp_path, "text,label,gold\na,pos,pos\nb,neg,meh\n", true_label_column="gold")
    assert "'meh'" in str(err) and "row 2" in str(err)


def test_label_na_and_none_stay_labels(tmp_path):
    ds = load_dataset(_csv(tmp_path, "text,label\na,NA\nb,None\nc,NA\n"))
    assert ds.label_names == ["NA", "None"] and ds.labels.tolist() == [0, 1, 0]


def test_bom_header_finds_text_column(tmp_path):
    ds = load_dataset(_csv(tmp_path, "\ufefftext,label\na,x\nb,y\n".encode("utf-8")))
    assert ds.texts == ["a", "b"]


# ---- bad input: one DataValidationError naming the problem, rows and fix --------------


def test_missing_column_names_existing_columns(tmp_path):
    err = _error(tmp_path, "sentence,label\na,x\nb,y\n")
    assert "'text' not found" in str(err) and "'sentence'" in str(err) and "text_column" in str(err)


def test_empty_text_whitespace_only(tmp_path):
    err = _error(tmp_path, "text,label\na,x\n   ,y\nc,x\n\t,y\n")
    assert "text column 'text' is empty" in str(err) and "rows 2, 4" in str(err)
    assert "row 1 is the first row after the header" in str(err)


def test_nan_text(tmp_path):
    err = _error(tmp_path, "text,label\na,x\n,y\nc,x\n")
    assert "missing" in str(err) and "(row 2)" in str(err)
    with pytest.raises(DataValidationError, match=r"row 2\)"):
        dataset_from_frame(pd.DataFrame({"text": ["a", None, "c"], "label": ["x", "y", "x"]}))


def test_nan_label(tmp_path):
    err = _error(tmp_path, "text,label\na,x\nb,\nc,y\nd,\n")
    assert "label column 'label' is empty or missing" in str(err) and "rows 2, 4" in str(err)
    with pytest.raises(DataValidationError, match=r"label column 'label' is empty or missing"):
        dataset_from_frame(pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, np.nan, 0.0]}))


def test_one_class(tmp_path):
    err = _error(tmp_path, "text,label\na,spam\nb,spam\n")
    assert "only one class ('spam')" in str(err) and "at least two" in str(err)


def test_fewer_than_two_rows(tmp_path):
    err = _error(tmp_path, "text,label\na,x\n")
    assert "at least 2" in str(err)


def test_all_problems_in_one_error(tmp_path):
    err = _error(tmp_path, "text,label\n,x\nb,\nc,1.5\n")
    assert len(err.problems) == 2  # text missing, label missing (mixed labels are strings)
    err = _error(tmp_path, "txt,label\na,x\nb,\n")
    # the text column is missing, yet the label column is still checked
    assert len(err.problems) == 3 and "'txt'" in err.problems[0] and "(row 2)" in err.problems[1]
    assert "only one class ('x')" in err.problems[2]


def test_non_utf8_bytes(tmp_path):
    err = _error(tmp_path, b"text,label\na,x\ncaf\xe9,y\n")
    assert "not valid UTF-8" in str(err) and "line 3" in str(err) and "byte offset 18" in str(err)
    assert "re-save" in str(err)


def test_test_labels_the_train_lacks(tmp_path):
    err = _error(tmp_path, "text,label\na,x\nb,z\nc,y\nd,z\n", label_names=["x", "y"])
    assert "test set has labels the train set lacks: 'z'" in str(err) and "rows 2, 4" in str(err)
    err = _error(tmp_path, "text,label\na,0\nb,3\n", label_names=["neg", "pos"])
    assert "lacks: '3'" in str(err)


def test_malformed_csv(tmp_path):
    err = _error(tmp_path, "text,label\na,x\nb, c,y\nd,x\n")
    assert "could not be parsed" in str(err) and "line 3" in str(err) and "quote" in str(err)
    err = _error(tmp_path, "text,label\nhello, world,x\nd,y\n")
    assert "data row 1 has more fields than the header" in str(err)


def test_empty_file(tmp_path):
    assert "empty" in str(_error(tmp_path, ""))
    assert "empty" in str(_error(tmp_path, "\n\n  \n"))


def test_header_only(tmp_path):
    err = _error(tmp_path, "text,label\n")
    assert "no data rows" in str(err) and "'text', 'label'" in str(err)


def test_float_label_is_an_error(tmp_path):
    err = _error(tmp_path, "text,label\na,0\nb,1.5\nc,1\n")
    assert "not whole ('1.5')" in str(err) and "(row 2)" in str(err)


def test_too_large_file(tmp_path):
    path = _csv(tmp_path, "text,label\na,x\nb,y\n")
    with pytest.raises(DataValidationError, match=r"the file is 19 bytes, over the 10 bytes limit"):
        read_table(path, max_bytes=10)
    with pytest.raises(DataValidationError, match=r"over the 10 bytes limit"):
        read_table(io.BytesIO(path.read_bytes()), fmt="csv", max_bytes=10)
    with pytest.raises(DataValidationError, match=r"unpacks to more than 200 bytes"):
        read_table(io.BytesIO(gzip.compress(b"text,label\n" + b"a,x\n" * 100)), fmt="csv", max_bytes=200)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match="cannot tell the file format"):
        read_table(_csv(tmp_path, "x", "data.xlsx"))
    with pytest.raises(ValueError, match="fmt must be one of"):
        read_table(io.BytesIO(b"x"), fmt="xlsx")
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "nope.csv")


def test_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', encoding="utf-8")
    with pytest.raises(DataValidationError, match="line 2 is not valid JSON"):
        load_dataset(path)


# ---- TextDataset --------------------------------------------------------------------


def _dataset() -> TextDataset:
    df = pd.DataFrame({"text": list("abcdef"), "label": list("xyxyxz"), "gold": list("xyyyxz")})
    return dataset_from_frame(df, true_label_column="gold", source="s")


def test_subset_keeps_everything_aligned():
    ds = _dataset()
    sub = ds.subset([4, 1, 5])
    assert sub.texts == ["e", "b", "f"]
    assert sub.labels.tolist() == [0, 1, 2] and sub.true_labels.tolist() == [0, 1, 2]
    assert sub.frame["text"].tolist() == ["e", "b", "f"] and sub.frame.index.tolist() == [0, 1, 2]
    assert sub.label_names == ds.label_names and sub.source == "s"
    mask = ds.subset(ds.labels == 0)
    assert mask.texts == ["a", "c", "e"]
    with pytest.raises(ValueError, match="indices must be in"):
        ds.subset([6])


def test_with_labels_copies():
    ds = _dataset()
    new = ds.with_labels(np.zeros(6, dtype=int))
    assert new.labels.tolist() == [0] * 6 and ds.labels.tolist() == [0, 1, 0, 1, 0, 2]
    assert new.true_labels.tolist() == ds.true_labels.tolist()  # kept when not given
    both = ds.with_labels(ds.true_labels, true_labels=ds.labels)
    assert both.true_labels.tolist() == ds.labels.tolist()
    assert ds.with_labels(ds.labels, true_labels=None).true_labels is None
    with pytest.raises(ValueError, match="class ids in 0..2"):
        ds.with_labels(np.full(6, 3))
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        ds.with_labels([0, 1])


# ---- files come out as they went in (issue #10 item 6) ----------------------------------


def _jsonl(tmp_path, lines: list[str], name: str = "d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parquet_named_index_is_kept_as_a_column(tmp_path):
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"]},
                         index=pd.Index([101, 205, 307], name="review_id"))
    frame.to_parquet(tmp_path / "r.parquet")  # the index is written, as pandas does by default
    ds = load_dataset(tmp_path / "r.parquet")
    assert list(ds.frame.columns) == ["review_id", "text", "label"]
    assert ds.frame["review_id"].tolist() == [101, 205, 307] and ds.frame.index.tolist() == [0, 1, 2]
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}, index=[7, 9]).to_parquet(tmp_path / "u.parquet")
    assert list(load_dataset(tmp_path / "u.parquet").frame.columns) == ["text", "label"]  # pandas' row numbers
    clash = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}, index=pd.Index([1, 2], name="text"))
    clash.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(DataValidationError, match="index 'text' has the same name as one of its columns"):
        load_dataset(tmp_path / "c.parquet")


def test_jsonl_values_keep_their_type(tmp_path):
    path = _jsonl(tmp_path, ['{"text": "a", "label": "x", "id": 123, "ok": true}',
                             '{"text": "b", "label": "y", "id": null, "ok": null}',
                             '{"text": "c", "label": "x", "id": 18446744073709551615, "ok": false}',
                             '{"text": "d", "label": 18446744073709551615, "id": 5}'])
    with pytest.raises(DataValidationError) as info:
        load_dataset(path)
    assert "column 'label' mixes value types: a string (line 1: 'x') and a number (line 4:" in str(info.value)
    path = _jsonl(tmp_path, ['{"text": "a", "label": "x", "id": 123, "score": 1}',
                             '{"text": "b", "label": "y", "id": null, "score": 1.5}',
                             '{"text": "c", "label": "x", "id": 18446744073709551615}'])
    frame = load_dataset(path).frame
    assert frame["id"].tolist()[0] == 123 and str(frame["id"].dtype) == "UInt64"  # not 123.0
    assert frame["score"].tolist()[:2] == [1.0, 1.5]
    path = _jsonl(tmp_path, ['{"text": "a", "label": 18446744073709551615}', '{"text": "b", "label": 1}',
                             '{"text": "c", "label": 18446744073709551615}'])
    ds = load_dataset(path)
    assert ds.label_names == ["1", "18446744073709551615"] and ds.labels.tolist() == [1, 0, 1]


JSONL_FIRST = '{"text": "a", "label": "x", "meta": null, "n": 1}'


@pytest.mark.parametrize("first, line, expected", [
    (JSONL_FIRST, '{"text": "b", "label": "y", "meta": {"a": 1}}',
     ["line 3: column 'meta' holds a JSON object ({\"a\": 1})", "json.dumps"]),
    (JSONL_FIRST, '{"text": ["b", "c"], "label": "y"}', ["line 3: column 'text' holds a JSON array ([\"b\", \"c\"])"]),
    ('{"text": "a", "label": 1}', '{"text": "b", "label": 1e400}',
     ["line 3: column 'label' holds a number too large for a 64-bit float", "infinity"]),
    ('{"text": "a", "label": 1.5}', '{"text": "b", "label": -Infinity}', ["line 3: column 'label' holds a number too large"]),
    (JSONL_FIRST, '{"text": "b", "label": "y", "n": 123456789012345678901234567890}',
     ["line 3: column 'n' holds the integer 123456789012345678901234567890, beyond 64 bits"]),
    (JSONL_FIRST, '{"text": "b", "label": true}',
     ["column 'label' mixes value types: a string (line 1: 'x') and true/false (line 3: True)"]),
])
def test_jsonl_values_that_cannot_be_kept_are_refused(tmp_path, first, line, expected):
    """They were accepted and then stored in another form (objects as JSON text), read as
    infinity, or failed when the dataset was saved."""
    path = _jsonl(tmp_path, [first, "", line])  # a blank line: line numbers still count it
    with pytest.raises(DataValidationError) as info:
        load_dataset(path)
    for part in expected:
        assert part in str(info.value)
    array = tmp_path / "d.json"
    array.write_text(f"[{first}, {line}]", encoding="utf-8")
    with pytest.raises(DataValidationError, match="item 2 of the JSON array|item 1 of the JSON array"):
        load_dataset(array)


def test_parquet_columns_that_are_not_text_are_refused(tmp_path):
    frame = pd.DataFrame({
        "struct": [{"a": "x"}, {"a": "y"}], "list": [["x"], ["y"]], "binary": [b"ab", b"cd"],
        "text": ["a", "b"], "label": ["x", "y"],
    })
    frame.to_parquet(tmp_path / "n.parquet", index=False)
    ds = load_dataset(tmp_path / "n.parquet")  # kept as extra columns
    assert list(ds.frame.columns) == list(frame.columns)
    for column, what in [("struct", "dicts (structs)"), ("list", "lists"), ("binary", "bytes")]:
        with pytest.raises(DataValidationError) as info:
            load_dataset(tmp_path / "n.parquet", text_column=column)
        assert f"text column {column!r} holds {what}, not text, in 2 rows (rows 1, 2)" in str(info.value)
        with pytest.raises(DataValidationError) as info:
            load_dataset(tmp_path / "n.parquet", label_column=column)
        assert f"label column {column!r} holds {what}, which cannot be class labels" in str(info.value)


# ---- messages that were missing or misleading (issue #10 item 7) -------------------------


def test_the_same_column_cannot_be_text_and_label():
    df = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
    with pytest.raises(DataValidationError, match="'text' is chosen as both the text column and the label column"):
        dataset_from_frame(df, text_column="text", label_column="text")
    with pytest.raises(DataValidationError, match="both the label column and the true-label column"):
        dataset_from_frame(df, true_label_column="label")


def test_single_sample_classes_and_invisible_texts_are_warned_about():
    df = pd.DataFrame({"text": ["a", "b", "c", "\u200b", " \u200d\ufeff", "d"], "label": ["x", "x", "y", "y", "y", "z"]})
    ds = dataset_from_frame(df)
    assert len(ds) == 6 and len(ds.warnings) == 2
    assert "texts made only of invisible characters" in ds.warnings[0] and "rows 4, 5" in ds.warnings[0]
    assert "1 class with a single sample ('z')" in ds.warnings[1]
    # a test set (label_names given) may hold one sample of a class
    assert dataset_from_frame(df.iloc[:3], label_names=["x", "y", "z"]).warnings == []


def test_sniffed_formats_and_files_without_columns(tmp_path):
    import bz2

    raw = _frame().to_csv(index=False).encode("utf-8")
    assert load_dataset(_csv(tmp_path, bz2.compress(raw), "packed.csv")).texts == TEXTS
    _frame().to_parquet(tmp_path / "table.csv", index=False)  # Parquet under a .csv name
    assert load_dataset(tmp_path / "table.csv").texts == TEXTS
    with pytest.raises(DataValidationError, match="2 rows but no columns"):
        read_table(_csv(tmp_path, "{}\n\n{}\n", "e.jsonl"))
    with pytest.raises(DataValidationError, match="the file holds no rows"):  # not "a header (columns: )"
        read_table(_csv(tmp_path, "[]", "e.json"))
    path = _csv(tmp_path, '{"text": "ok \\ud83d\\ude00", "label": "x"}\n{"text": "\\udc00 b", "label": "y"}\n', "s.jsonl")
    with pytest.raises(DataValidationError, match=r"line 2: column 'text' holds the escape \\udc00 without its pair"):
        load_dataset(path)
