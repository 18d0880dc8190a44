"""Issue #5, item 1: bad input gets a clear message, never a traceback.

Every input on the issue's list goes through
  (a) the loader (`load_dataset`): one DataValidationError naming the problem and the
      fix, or -- for inputs that are legitimate data -- acceptance, verbatim;
  (b) the CLI's `main()` in this process (exit status 2, "error: ..." on stderr), for
      every case: cheap, and an exception escaping main() would fail the test;
  (c) the CLI as a real subprocess (`python -m selfmix_core train ...`) for one case of
      each kind of failure (reader, validation, test set, model, output folder), run
      side by side so the import cost is paid once per core, plus one real training run
      on a file holding every legitimate-but-awkward input at once.

What is accepted and why (also in docs/RELIABILITY.md): a UTF-8 BOM, emoji, right-to-
left text, a 100,000-character text (the tokenizer truncates it to max_length),
duplicate rows (a duplicate with a different label is exactly what the tool should
flag), formula-looking text (kept verbatim; escaped only when exported as CSV),
thousands of classes, whole-number float labels ("2.0"), NUL and other control
characters inside a text. Refused: a single row, a single class, a label column with a
different value in every row (an id or text column chosen by mistake).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfmix_core.cli import main
from selfmix_core.data import DataValidationError, load_dataset
from tests.reliability_helpers import REPO, child_env, one_torch_thread, unescaped
from tests.tiny_model import tiny_model_dir

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)
GOOD_ROWS = "".join(f"the apple {i},fruit\nthe red car {i},vehicle\n" for i in range(6))
GOOD = "text,label\n" + GOOD_ROWS

# ---- the bad files: name -> (file name, content, what the message must say) --------------

BAD_FILES: dict[str, tuple[str, bytes | str, list[str]]] = {
    "malformed CSV (unclosed quote)": ("m.csv", 'text,label\n"unclosed quote,x\nb,y\n', ["could not be parsed", "quote"]),
    "malformed CSV (extra field)": ("m2.csv", "text,label\na,x\nb, c,y\nd,x\n", ["could not be parsed", "line 3"]),
    "wrong delimiter: semicolons in a .csv": ("semi.csv", "text;label\nhello world;x\nbye now;y\n",
                                              ["separated by semicolons", "comma-separated"]),
    "wrong delimiter: semicolons and commas": ("semi2.csv", "text;label\nhello, world;x\nbye, now;y\n",
                                               ["could not be parsed", "separated by semicolons"]),
    "wrong delimiter: tabs in a .csv": ("tabs.csv", "text\tlabel\nhello\tx\nbye\ty\n", ["separated by tabs", ".tsv"]),
    "wrong delimiter: commas in a .tsv": ("commas.tsv", "text,label\nhello,x\nbye,y\n", ["separated by commas", ".csv"]),
    "non-UTF-8 bytes (Latin-1)": ("latin.csv", "text,label\ncafé,x\nbar,y\n".encode("latin-1"),
                                  ["not valid UTF-8", "byte 0xe9", "line 2", "re-save"]),
    "UTF-16 file": ("u16.csv", GOOD.encode("utf-16"), ["not valid UTF-8", "UTF-16"]),
    "random binary": ("bin.csv", bytes(range(256)) * 4, ["not valid UTF-8"]),
    "empty file": ("empty.csv", "", ["the file is empty"]),
    "blank lines only": ("blank.csv", "\n \n\t\n", ["the file is empty"]),
    "header only": ("header.csv", "text,label\n", ["no data rows", "'text', 'label'"]),
    "one row": ("one.csv", "text,label\nhello,x\n", ["1 row", "at least 2"]),
    "one class": ("oneclass.csv", "text,label\na,spam\nb,spam\nc,spam\n", ["only one class ('spam')"]),
    "NaN and blank text": ("nan.csv", "text,label\na,x\n,y\n   ,x\nd,y\n",
                           ["text column 'text' is empty, whitespace-only or missing", "rows 2, 3"]),
    "blank label": ("nolabel.csv", "text,label\na,x\nb,\nc,y\n", ["label column 'label' is empty or missing", "row 2"]),
    "float labels": ("float.csv", "text,label\na,0\nb,1.5\nc,1\nd,2.25\n", ["not whole ('1.5', '2.25')", "rows 2, 4"]),
    "a different label in every row (id column)": (
        "ids.csv", "text,label\n" + "".join(f"text {i},id-{i}\n" for i in range(30)),
        ["different value in every row", "30 rows, 30 classes", "label_column"]),
    "missing text column": ("cols.csv", "sentence,label\na,x\nb,y\n", ["'text' not found", "'sentence'"]),
    "corrupt gzip": ("bad.csv.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-garbage", ["not a valid gzip archive"]),
    "corrupt zip": ("bad.csv", b"PK\x03\x04" + b"\x00" * 60, ["not a valid zip archive"]),
    "JSON nested too deeply": ("deep.jsonl", "[" * 50_000 + "]" * 50_000 + "\n", ["nested too deeply"]),
    "JSONL line that is not an object": ("list.jsonl", '{"text": "a", "label": "x"}\n[1, 2]\n', ["line 2 is not a JSON object"]),
    "not a Parquet file": ("fake.parquet", b"PAR1 but not really", ["not a readable Parquet file"]),
    "JSONL of empty objects": ("empty.jsonl", "{}\n{}\n", ["2 rows but no columns", "every JSON object is empty"]),
    "lone surrogate in JSONL": ("surrogate.jsonl", '{"text": "a", "label": "x"}\n{"text": "b \\ud800", "label": "y"}\n',
                                ["line 2: column 'text' holds the escape \\ud800 without its pair", "Fix:"]),
    "an Excel workbook": ("book.csv", None, ["Excel workbook", "CSV UTF-8"]),  # filled in below
    "the same column as text and label": ("same.csv", "text,label\na,x\nb,y\n",
                                          ["'text' is chosen as both the text column and the label column"]),
}


def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


BAD_FILES["an Excel workbook"] = ("book.csv", _xlsx(), BAD_FILES["an Excel workbook"][2])
# load_dataset(path, label_column=...) for the cases that need it (the CLI: --label-column)
BAD_COLUMNS = {"the same column as text and label": "text"}


def _write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_loader_refuses_bad_file_with_a_clear_message(tmp_path, case):
    name, content, expected = BAD_FILES[case]
    with pytest.raises(DataValidationError) as info:
        load_dataset(_write(tmp_path, name, content), label_column=BAD_COLUMNS.get(case, "label"))
    message = str(info.value)
    for part in expected:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert "Fix:" in message or "fix" in message.lower()
    assert "Traceback" not in message and len(message) < 2000


def test_loader_refuses_a_folder(tmp_path):
    with pytest.raises(DataValidationError, match="folder, not a data file"):
        load_dataset(tmp_path)


def test_test_set_with_labels_the_train_set_lacks(tmp_path):
    train = load_dataset(_write(tmp_path, "train.csv", GOOD))
    test = _write(tmp_path, "test.csv", "text,label\na,fruit\nb,weather\nc,sports\nd,weather\n")
    with pytest.raises(DataValidationError) as info:
        load_dataset(test, label_names=train.label_names)
    message = str(info.value)
    assert "test set has labels the train set lacks: 'weather', 'sports'" in message
    assert "rows 2, 3, 4" in message and "'fruit', 'vehicle'" in message


# ---- legitimate but awkward input: accepted verbatim -------------------------------------

AWKWARD_TEXTS = {
    "emoji": "great 😀🎉 👩‍👩‍👧 flags 🇩🇪",
    "rtl": "עברית מימין לשמאל والعربية أيضا",
    "mixed direction": "abc \u202edcba\u202c def",
    "formula =": "=HYPERLINK(\"http://x\",\"click\")",
    "formula +": "+1+2",
    "formula -": "-2+3",
    "formula @": "@SUM(A1:A9)",
    "nul and controls": "a\x00b\x07c",
    "long": "word " * 20_000,  # 100,000 characters
    "quotes and commas": 'say "hi", then, leave',
    "line breaks": "two\r\nlines\nand\rmore",
    "combining": "e\u0301 n\u0303",
}


def _awkward_frame() -> pd.DataFrame:
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(AWKWARD_TEXTS.values())]
    rows += [("duplicate row", "pos")] * 3 + [("duplicate row", "neg")]  # duplicates, one conflicting
    return pd.DataFrame(rows, columns=["text", "label"])


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_awkward_but_legitimate_texts_are_kept_verbatim(tmp_path, fmt):
    frame = _awkward_frame()
    path = tmp_path / f"awkward.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        data = frame.to_csv(index=False, sep="\t" if fmt == "tsv" else ",")
        path.write_bytes(b"\xef\xbb\xbf" + data.encode("utf-8"))  # with a UTF-8 BOM, as Excel writes it
    ds = load_dataset(path)
    assert ds.texts == frame["text"].tolist()
    assert len(ds.texts[list(AWKWARD_TEXTS).index("long")]) == 100_000
    assert len(ds) == len(frame)  # duplicate rows are kept: a conflicting duplicate is a label error to flag
    assert ds.label_names == ["neg", "pos"] and list(ds.frame.columns) == ["text", "label"]


def test_files_keep_every_column_and_value_through_the_store_and_the_export(tmp_path):
    """Issue #10 item 6: a Parquet named index was missing from the export, and a JSONL
    id 123 in a column with a null came out as 123.0."""
    from selfmix_core.export import build_cleaned_frame, export_bytes
    from selfmix_core.store import Store
    from studio.worker import load_stored_dataset

    indexed = pd.DataFrame({"text": ["good film", "bad film", "fine film"], "label": ["pos", "neg", "pos"]},
                           index=pd.Index([101, 205, 307], name="review_id"))
    indexed.to_parquet(tmp_path / "reviews.parquet")
    _write(tmp_path, "ids.jsonl", '{"text": "good film", "label": "pos", "id": 123, "ok": true}\n'
                                  '{"text": "bad film", "label": "neg", "id": null, "ok": null}\n'
                                  '{"text": "fine film", "label": "pos", "id": 7, "ok": false}\n')
    expected = {"reviews.parquet": ("review_id", [101, 205, 307]), "ids.jsonl": ("id", [123, None, 7])}
    store = Store(tmp_path / "home")
    for name, (column, values) in expected.items():
        ds = load_dataset(tmp_path / name)
        meta = {"text_column": "text", "label_column": "label", "label_names": ds.label_names}
        dataset_id = store.add_dataset(name, ds.frame, meta)
        back = load_stored_dataset(store, dataset_id)
        cleaned = build_cleaned_frame(store.load_dataset_frame(dataset_id), back.labels, back.label_names, {},
                                      None, 0.5)
        rows = [json.loads(line) for line in export_bytes(cleaned, "jsonl").decode().splitlines()]
        assert [r[column] for r in rows] == values, name  # 123, not 123.0; the index is a column
        assert list(cleaned.columns[: len(ds.frame.columns)]) == list(ds.frame.columns), name
        csv_back = pd.read_csv(io.BytesIO(export_bytes(cleaned, "csv")), dtype=str, keep_default_na=False)
        assert csv_back[column].tolist() == ["" if v is None else str(v) for v in values], name
    store.close()


def test_jsonl_with_unicode_line_separators_inside_texts(tmp_path):
    """U+2028 / U+0085 are legal unescaped inside JSON strings (they once split the line)."""
    frame = pd.DataFrame({"text": ["a\u2028b", "c\x85d", "e\u2029f"], "label": ["x", "y", "x"]})
    path = tmp_path / "sep.jsonl"
    frame.to_json(path, orient="records", lines=True, force_ascii=False)
    assert "\u2028" in path.read_text(encoding="utf-8")
    assert load_dataset(path).texts == frame["text"].tolist()


def test_bom_everywhere(tmp_path):
    bom = b"\xef\xbb\xbf"
    for name, data in {
        "b.csv": GOOD.encode(),
        "b.tsv": GOOD.replace(",", "\t").encode(),
        "b.jsonl": b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n',
    }.items():
        ds = load_dataset(_write(tmp_path, name, bom + data))
        assert not ds.texts[0].startswith("\ufeff") and ds.text_column == "text"


def test_compressed_uploads_and_line_endings(tmp_path):
    raw = GOOD.encode()
    for name, data in {
        "g.csv.gz": gzip.compress(raw),
        "b.csv.bz2": bz2.compress(raw),
        "cr.csv": GOOD.replace("\n", "\r").encode(),
        "bz2-named.csv": bz2.compress(raw),  # read by its content, not "not valid UTF-8"
        "parquet-named.csv": pd.read_csv(io.StringIO(GOOD)).to_parquet(index=False),
        "crlf.csv": GOOD.replace("\n", "\r\n").encode(),
    }.items():
        assert len(load_dataset(_write(tmp_path, name, data))) == 12, name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../outside/evil.csv", raw)  # a member name that escapes: read in memory only
    ds = load_dataset(_write(tmp_path, "z.zip", buf.getvalue()))
    assert len(ds) == 12 and not (tmp_path.parent / "outside").exists()


def test_thousands_of_classes_and_whole_float_labels(tmp_path):
    rows = "".join(f"item {c} a,class_{c}\nitem {c} b,class_{c}\n" for c in range(3000))
    ds = load_dataset(_write(tmp_path, "many.csv", "text,label\n" + rows))
    assert ds.num_classes == 3000 and len(ds) == 6000
    assert ds.label_names[:3] == ["class_0", "class_1", "class_10"]  # names sort as text
    # labels keep their exact text: "1.0" is not merged into "1" (a warning says they look alike)
    ds = load_dataset(_write(tmp_path, "floats.csv", "text,label\na,1.0\nb,2.0\nc,1\n"))
    assert ds.label_names == ["1", "1.0", "2.0"] and ds.labels.tolist() == [1, 2, 0]
    assert "same number in different ways: '1.0' and '1'" in ds.warnings[0]


# ---- the CLI, in this process: every case ---------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("bad-input-model"))


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, model_dir):
    """Model folders that hold no usable model: name -> (folder, what the message says)."""
    import shutil

    root = tmp_path_factory.mktemp("broken-models")

    def copy(name, drop=(), write=None):
        folder = root / name
        shutil.copytree(model_dir, folder)
        for f in drop:
            (folder / f).unlink()
        for f, data in (write or {}).items():
            (folder / f).write_bytes(data)
        return folder

    weights = (model_dir / "model.safetensors").read_bytes()
    empty = root / "empty"
    empty.mkdir()
    return {
        "does not exist": (root / "nope", ["does not exist"]),
        "empty folder": (empty, ["holds no config.json"]),
        "a file, not a folder": (model_dir / "config.json", ["holds no config.json"]),
        "corrupt config.json": (copy("badjson", write={"config.json": b"{not json"}), ["config", "not a valid JSON"]),
        "truncated weights": (copy("truncated", write={"model.safetensors": weights[:1000]}),
                              ["could not load an encoder"]),
        "random bytes as weights": (copy("garbage", write={"model.safetensors": os.urandom(4096)}),
                                    ["could not load an encoder"]),
        "no weights": (copy("noweights", drop=["model.safetensors"]), ["could not load an encoder", "model.safetensors"]),
        "no tokenizer files": (copy("notok", drop=["tokenizer.json", "tokenizer_config.json"]),
                               ["tokenizer", "knows only", "tokenizer files"]),
    }


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    """stderr without progress bars (tqdm / transformers' 'Loading weights')."""
    return [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "Loading weights" not in line]


def assert_clean_exit_2(code: int, err: str, expected: list[str], what: str) -> None:
    lines = error_lines(err)
    assert code == 2, f"{what}: exit {code}, stderr {err!r}"
    assert "Traceback" not in err, f"{what}: {err}"
    assert lines and lines[0].startswith("error: "), f"{what}: {lines}"
    assert len(lines) <= 12, f"{what}: message too long: {lines}"
    text = "\n".join(lines)
    for part in expected:
        assert part in text, f"{what}: {part!r} not in {text!r}"


def _args(train: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["train", "--train", str(train), "--model", str(model), "--method", "ce", "--epochs", "1",
            "--batch-size", "8", "--max-length", "16", "--no-progress", "--out", str(out), *extra]


def test_cli_every_bad_file_exits_2_with_the_message(tmp_path, capsys, model_dir):
    for case, (name, content, expected) in BAD_FILES.items():
        path = _write(tmp_path, name, content)
        column = ["--label-column", BAD_COLUMNS[case]] if case in BAD_COLUMNS else []
        code, _, err = run_main(_args(path, tmp_path / "out", model_dir, *column), capsys)
        assert_clean_exit_2(code, err, expected, case)
    assert not (tmp_path / "out").exists()  # bad data stops before anything is written


def test_cli_bad_models_exit_2_with_the_message(tmp_path, capsys, broken_models):
    train = _write(tmp_path, "train.csv", GOOD)
    for case, (folder, expected) in broken_models.items():
        code, _, err = run_main(_args(train, tmp_path / "out", folder), capsys)
        assert_clean_exit_2(code, err, expected, case)
    # a relative path that is not a folder is looked up on the Hub (offline here): said so
    code, _, err = run_main(_args(train, tmp_path / "out", Path("no-such-dir/model")), capsys)
    assert_clean_exit_2(code, err, ["not a local folder", "Hugging Face Hub id"], "unknown relative path")


def test_cli_other_bad_arguments(tmp_path, capsys, model_dir):
    train = _write(tmp_path, "train.csv", GOOD)
    blocker = _write(tmp_path, "a-file", "x")
    cases = {
        "missing train file": (_args(tmp_path / "nope.csv", tmp_path / "o", model_dir), ["file not found", "nope.csv"]),
        "--out below a file": (_args(train, blocker / "out", model_dir), ["cannot use --out", "Not a directory"]),
        "test set with unknown labels": (
            _args(train, tmp_path / "o", model_dir, "--test",
                  str(_write(tmp_path, "test.csv", "text,label\na,fruit\nb,weather\n"))),
            ["test set has labels the train set lacks: 'weather'"]),
        "noise rate out of range": (_args(train, tmp_path / "o", model_dir, "--noise", "sym", "--noise-rate", "1.5"),
                                    ["--noise-rate strictly between 0 and 1"]),
        "zero epochs": (_args(train, tmp_path / "o", model_dir, "--epochs", "0"), ["epochs must be >= 1"]),
        "wrong text column": (_args(train, tmp_path / "o", model_dir, "--text-column", "body"),
                              ["'body' not found", "'text', 'label'"]),
        "cuda without a GPU": (_args(train, tmp_path / "o", model_dir, "--device", "cuda"), ["no CUDA GPU"]),
        "negative seed": (_args(train, tmp_path / "o", model_dir, "--seed", "-1"),
                          ["seed must be a whole number from 0 to 4294967295, got -1"]),
        "--noise-rate without --noise": (_args(train, tmp_path / "o", model_dir, "--noise-rate", "0.3"),
                                         ["--noise-rate 0.3 does nothing without --noise", "--noise sym"]),
        # these were tracebacks (an IndexError mid-batch, FloatingPointError, RuntimeError)
        "max length beyond the model": (_args(train, tmp_path / "o", model_dir, "--max-length", "1000"),
                                        ["max_length 1000 is longer than the 512 token positions",
                                         "from 8 to 512", "--max-length"]),
        "absurd learning rate": (_args(train, tmp_path / "o", model_dir, "--lr", "1e30"),
                                 ["--lr must be a number above 0 and at most 1", "got 1e+30"]),
        "infinite lambda-p": (_args(train, tmp_path / "o", model_dir, "--lambda-p", "inf"),
                              ["--lambda-p must be a number from 0 to 100", "got inf"]),
        "infinite alpha": (_args(train, tmp_path / "o", model_dir, "--alpha", "inf"),
                           ["--alpha must be a number above 0 and at most 100", "got inf"]),
        "NaN temperature": (_args(train, tmp_path / "o", model_dir, "--temperature", "nan"),
                            ["--temperature must be a number above 0", "got nan"]),
        "unknown device": (_args(train, tmp_path / "o", model_dir, "--device", "bogus"),
                           ["--device must be auto, cpu, cuda, cuda:N", "'bogus'"]),
    }
    import torch

    if torch.cuda.is_available():
        del cases["cuda without a GPU"]
    for case, (argv, expected) in cases.items():
        code, _, err = run_main(argv, capsys)
        assert_clean_exit_2(code, err, expected, case)


# Accepted, but the person is told before training or saving (TextDataset.warnings):
# file name -> (content, what the warning says).
WARNED_FILES: dict[str, tuple[str, list[str]]] = {
    "lookalike.csv": ("text,label\n" + "".join(f"the apple {i},01\nthe red car {i},1\n" for i in range(6)),
                      ["writes the same number in different ways: '01' and '1'", "different classes"]),
    "single.csv": (GOOD + "a small boat,boat\n", ["1 class with a single sample ('boat')", "Fix:"]),
    "invisible.csv": (GOOD + "\u200b\u200d\u2060,fruit\n\u00ad,vehicle\n",
                      ["texts made only of invisible characters", "2 rows (rows 13, 14)"]),
}


def test_cli_prints_the_data_warnings(tmp_path, capsys, model_dir):
    for name, (content, expected) in WARNED_FILES.items():
        code, _, err = run_main(_args(_write(tmp_path, name, content), tmp_path / "out", model_dir), capsys)
        assert code == 0, (name, err)
        warned = [line for line in err.splitlines() if line.startswith(f"warning: {name}: ")]
        assert warned, (name, err)
        for part in expected:
            assert any(part in line for line in warned), (name, part, warned)


def test_app_train_page_refuses_a_max_length_beyond_the_model(tmp_path, monkeypatch, model_dir):
    """The Train page checked nothing: a run with Max length 1000 was created and failed
    in the worker with an IndexError."""
    from streamlit.testing.v1 import AppTest

    from selfmix_core.store import Store

    home = tmp_path / "home"
    monkeypatch.setenv("SELFMIX_HOME", str(home))
    store = Store(home)
    store.add_dataset("good", pd.read_csv(io.StringIO(GOOD)),
                      {"text_column": "text", "label_column": "label", "label_names": ["fruit", "vehicle"]})
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/2_Train.py").run()
    at.text_input(key="train_model").input(str(model_dir))
    at.number_input(key="train_max_length").set_value(1000)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception
    shown = "\n".join(str(e.value) for e in at.error)
    assert "Cannot start" in shown and "longer than the 512 token positions" in shown and "from 8 to 512" in shown
    assert store.list_runs() == []
    store.close()


def test_cli_trains_on_thousands_of_classes(tmp_path, capsys, model_dir):
    rows = "".join(f"item {c} a,class_{c}\nitem {c} b,class_{c}\n" for c in range(2000))
    train = _write(tmp_path, "many.csv", "text,label\n" + rows)
    code, out, err = run_main(_args(train, tmp_path / "out", model_dir, "--max-train-samples", "40"), capsys)
    assert code == 0, err
    assert "2000 classes" in out
    assert len(pd.read_csv(tmp_path / "out" / "samples.csv")) == 40


# ---- the CLI as a real subprocess --------------------------------------------------------------

def start_cli(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "selfmix_core", *argv], cwd=REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_cli_subprocess_bad_input_exit_2_no_traceback(tmp_path, model_dir, broken_models):
    """One real process per kind of failure (the reader, the model, the output folder),
    started together; each pays the import of torch, so every other case runs in-process
    above through the same main()."""
    train = _write(tmp_path, "train.csv", GOOD)
    blocker = _write(tmp_path, "a-file", "x")
    cases = {
        "malformed CSV": (_args(_write(tmp_path, "m.csv", BAD_FILES["malformed CSV (unclosed quote)"][1]),
                                tmp_path / "o1", model_dir), ["could not be parsed"]),
        "corrupt weights": (_args(train, tmp_path / "o5", broken_models["truncated weights"][0]),
                            ["could not load an encoder"]),
        "--out below a file": (_args(train, blocker / "out", model_dir), ["cannot use --out"]),
    }
    procs = {case: start_cli(argv) for case, (argv, _) in cases.items()}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert_clean_exit_2(proc.returncode, err, cases[case][1], case)


def test_cli_subprocess_trains_on_awkward_input_and_escapes_formulas(tmp_path, model_dir):
    """BOM, emoji, RTL, a 100,000-character text, duplicates, formula-looking texts:
    a real run succeeds and samples.csv keeps every text, formula cells escaped."""
    frame = _awkward_frame()
    data = frame.to_csv(index=False).encode("utf-8")
    train = tmp_path / "awkward.csv"
    train.write_bytes(b"\xef\xbb\xbf" + data)
    out = tmp_path / "out"
    proc = start_cli(_args(train, out, model_dir))
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    samples = pd.read_csv(out / "samples.csv", dtype=str, keep_default_na=False)
    assert len(samples) == len(frame)
    texts = samples["text"].tolist()
    for original, written in zip(frame["text"], texts):
        if original.startswith(("=", "+", "-", "@")):
            assert written == "'" + original  # escaped for spreadsheets
        else:
            assert written == original
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == len(frame) and [e["epoch"] for e in metrics["epochs"]] == [1]
    assert np.isfinite(metrics["epochs"][0]["losses"]["ce"])


# ---- the app: the Data page shows the same messages ------------------------------------------


def test_app_data_page_shows_each_bad_file_as_a_message(tmp_path, monkeypatch):
    """Every bad file uploaded on the Data page: an error box with the loader's message,
    no exception. (A missing 'text' column is not an error there: the page lets the
    person pick the text and label columns.)"""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data.py").run()
    for case, (name, content, expected) in BAD_FILES.items():
        if case in ("missing text column", *BAD_COLUMNS):  # the page lets the person pick the columns
            continue
        data = content.encode("utf-8") if isinstance(content, str) else content
        at.file_uploader(key="data_upload").upload(name, data, "application/octet-stream")
        at.run()
        assert not at.exception, (case, [e.value for e in at.exception])
        shown = "\n".join(unescaped(e.value) for e in at.error)
        assert "cannot be used as it is" in shown and "Traceback" not in shown, (case, shown)
        for part in expected:
            assert part in shown, (case, part, shown)


def test_app_data_page_shows_the_data_warnings_before_saving(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "home"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data.py").run()
    for name, (content, expected) in WARNED_FILES.items():
        at.file_uploader(key="data_upload").upload(name, content.encode("utf-8"), "text/csv")
        at.run()
        assert not at.exception and not at.error, (name, [e.value for e in at.exception], [e.value for e in at.error])
        shown = "\n".join(unescaped(w.value) for w in at.warning)  # the text as the person reads it
        for part in expected:
            assert part in shown, (name, part, shown)
        assert at.button(key="data_save")  # the Save button is there, under the warning


def test_app_train_page_says_what_is_wrong_with_a_model_folder(tmp_path, monkeypatch, broken_models):
    """A folder that is not a model folder is refused when the run starts ("Cannot
    start: ..."); one whose files are damaged fails in the worker, and the Train page
    shows the failed run with the same message as the CLI."""
    from streamlit.testing.v1 import AppTest

    from selfmix_core.store import Store
    from studio import worker

    home = tmp_path / "home"
    monkeypatch.setenv("SELFMIX_HOME", str(home))
    store = Store(home)
    meta = {"text_column": "text", "label_column": "label", "label_names": ["fruit", "vehicle"]}
    store.add_dataset("good", pd.read_csv(io.StringIO(GOOD)), meta)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/2_Train.py").run()
    for case in ("does not exist", "empty folder"):
        folder, expected = broken_models[case]
        at.text_input(key="train_model").input(str(folder))
        at.button(key="FormSubmitter:train_form-Start training").click().run()
        assert not at.exception
        shown = "\n".join(unescaped(e.value) for e in at.error)
        assert "Cannot start" in shown and all(p in shown for p in expected), (case, shown)
    assert store.list_runs() == []
    for case in ("truncated weights", "no tokenizer files"):
        folder, expected = broken_models[case]
        at.text_input(key="train_model").input(str(folder))
        at.button(key="FormSubmitter:train_form-Start training").click().run()
        run_id = store.list_runs(limit=1)[0]["id"]
        assert worker.wait(run_id, timeout=120)
        at.run()
        assert not at.exception
        run = store.get_run(run_id)
        assert run["status"] == "failed" and all(p in run["error"] for p in expected), (case, run["error"])
        shown = "\n".join(unescaped(e.value) for e in at.error)
        assert "Training failed" in shown and expected[0] in shown and "Traceback" not in shown, (case, shown)
    store.close()
