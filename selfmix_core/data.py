"""Load a labeled text table and turn it into a validated `TextDataset`.

This module's one job: get from a file the user has (CSV, TSV, JSONL or Parquet, on
disk or uploaded) to a `TextDataset` whose labels are int64 class ids, or to ONE
`DataValidationError` that lists every problem found, each with the offending rows
and how to fix it.

Read top-down:

1. `read_table` reads the bytes (size limit, optional gzip/bz2/xz/zip), decodes them
   as strict UTF-8 (BOM stripped) and parses them into a DataFrame. CSV/TSV cells are
   read as strings and only an EMPTY cell is missing, so a label written "NA" or
   "None" stays a label.
2. `dataset_from_frame` checks the columns, texts and labels and maps labels to ids:
     - labels keep their exact text. A text label column holds integer labels only
       when every label is an integer written canonically ("-1", "0", "12"); "01",
       "1.0" or "+1" make it a column of names, kept as written (the same number
       written two ways is reported in `TextDataset.warnings`). A numeric column
       (JSONL/Parquet) of whole numbers holds integer labels; an all-numeric column
       with "1.5" is an error (not a class id);
     - integer labels without `label_names`: ids are the sorted distinct integers
       renumbered 0..K-1, names are str(int);
     - integer labels with `label_names`: if any name is itself an integer string
       (names that came from another set's integer labels) labels are matched by
       name, otherwise the integer IS the id and the name is label_names[id];
     - string labels: matched by name against `label_names`, or names = the sorted
       distinct strings. Label strings are stripped of surrounding whitespace (a
       warning says so);
     - the optional true-label column is mapped into the same names/ids.
3. `load_dataset` = `read_table` + `labels.txt` lookup + `dataset_from_frame`.

Row numbers in messages are 1-based DATA rows: row 1 is the first row after the
header (the first line of a JSONL file), as the user sees it in a spreadsheet minus
the header line.
"""

from __future__ import annotations

import bz2
import codecs
import collections
import csv
import dataclasses
import difflib
import gzip
import io
import json
import lzma
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

SUPPORTED_FORMATS = ("csv", "tsv", "jsonl", "parquet")
MAX_FILE_BYTES = 500 * 1024**2
# The most a compressed file may unpack to. A small .gz can hold a huge table (a 0.5 MB
# file unpacked to 500 MB and took 5.2 GB to read), so its content has its own bound.
MAX_UNPACKED_BYTES = 200 * 1024**2

# Extension -> reader. "txt" is TSV when its header line has a tab, else CSV; "json" is
# a JSON array of objects or JSON Lines.
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "txt",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
_EXAMPLE_ROWS = 8  # row numbers listed per problem before "..."
_ID_COLUMN_MIN_ROWS = 10  # from this many rows, all-distinct labels mean "not a label column"
_ROW_NOTE = (
    "Row numbers count data rows from 1: row 1 is the first row after the header "
    "(the first line of a JSONL file)."
)


class DataValidationError(ValueError):
    """The data cannot be used as it is. `problems` lists every problem found; each
    names the problem, the offending rows where there are any, and the fix."""

    def __init__(self, problems: list[str] | str, source: str = "", row_note: bool = False) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = f"{where}{self.problems[0]}"
        else:
            lines = "\n".join(f"  {i}. {p}" for i, p in enumerate(self.problems, 1))
            message = f"{where}{len(self.problems)} problems found:\n{lines}"
        if row_note:
            message += f"\n{_ROW_NOTE}"
        super().__init__(message)


@dataclass
class TextDataset:
    """A labeled text-classification dataset, all arrays aligned by row.

    texts: (N,) the texts, verbatim.
    labels: (N,) int64 ids into label_names: the GIVEN (possibly wrong) labels.
    label_names: (K,) class names; the index is the class id.
    true_labels: (N,) int64 ids into label_names, for evaluation only; None if unknown.
    frame: the original rows with all their columns, same order (index 0..N-1), for
        export; None when the data did not come from a table.
    source: file name or description. text_column / label_column / true_label_column:
        the columns of `frame` the arrays came from.
    warnings: what the person should know before using the data, though it is accepted
        (labels written in several ways, classes with one sample, ...); one sentence each,
        naming the rows and the fix. The CLI prints them, the Data page shows them.
    """

    texts: list[str]
    labels: np.ndarray
    label_names: list[str]
    true_labels: np.ndarray | None = None
    frame: pd.DataFrame | None = None
    source: str = ""
    text_column: str = "text"
    label_column: str = "label"
    true_label_column: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.texts = list(self.texts)
        self.label_names = [str(n) for n in self.label_names]
        self.labels = _as_ids(self.labels, "labels", len(self.texts), len(self.label_names))
        if self.true_labels is not None:
            self.true_labels = _as_ids(
                self.true_labels, "true_labels", len(self.texts), len(self.label_names)
            )
        if self.frame is not None and len(self.frame) != len(self.texts):
            raise ValueError(
                f"frame has {len(self.frame)} rows but there are {len(self.texts)} texts; "
                "they must be the same rows"
            )

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Any) -> "TextDataset":
        """The rows at `indices` ((M,) ints, or an (N,) bool mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be a 1-D array of integers, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"indices must be in 0..{len(self) - 1}, got {idx.min()}..{idx.max()}")
        return dataclasses.replace(
            self,
            texts=[self.texts[i] for i in idx.tolist()],
            labels=self.labels[idx],
            true_labels=None if self.true_labels is None else self.true_labels[idx],
            frame=None if self.frame is None else self.frame.iloc[idx].reset_index(drop=True),
        )

    def with_labels(self, labels: Any, true_labels: Any = ...) -> "TextDataset":
        """A copy with new (N,) label ids. `true_labels`: new (N,) ids, None to drop them,
        or left out to keep the current ones. `frame` is shared, not changed."""
        return dataclasses.replace(
            self,
            labels=np.array(labels, copy=True),
            true_labels=self.true_labels if true_labels is ... else true_labels,
        )


# ---- reading ---------------------------------------------------------------------------


def read_table(
    source: str | os.PathLike | BinaryIO,
    fmt: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
    max_unpacked_bytes: int | None = None,
) -> pd.DataFrame:
    """Read a CSV, TSV, JSONL or Parquet table into a DataFrame of R rows.

    source: a path, or a binary file-like object (an upload); its `.name`, if any, is
        used like a path's extension.
    fmt: "csv", "tsv", "jsonl" or "parquet" (also "txt", "json" or an extension such
        as ".csv"); None = from the extension (.csv .tsv .txt .jsonl .json .parquet,
        optionally followed by .gz/.bz2/.xz/.zip).
    max_bytes: the largest file accepted.
    max_unpacked_bytes: the largest content of a compressed file; None = the smaller of
        max_bytes and MAX_UNPACKED_BYTES (200 MB). Reading is bounded: the unpacking
        stops one byte past the limit.

    CSV/TSV cells come back as strings; an empty cell is NaN, "NA"/"None" stay strings.
    Column names lose a UTF-8 BOM and surrounding spaces.
    Raises DataValidationError for a file that is too big, not UTF-8, malformed, empty
    or header-only; FileNotFoundError for a missing path.
    """
    name = _source_name(source)
    kind, compression = _format_of(name, fmt)
    raw = _read_bytes(source, name, max_bytes)
    if compression is None and kind != "parquet":
        compression = _sniff_compression(raw)
    if compression is None:
        _refuse_known_binary(raw, name)
    if compression is not None:
        unpacked = min(max_bytes, MAX_UNPACKED_BYTES) if max_unpacked_bytes is None else max_unpacked_bytes
        raw, inner = _decompress(raw, compression, unpacked, name)
        if kind is None and inner:
            kind, _ = _format_of(inner, None)
    if kind != "parquet" and raw[:4] == b"PAR1":
        kind = "parquet"  # a Parquet file named .csv (or without an extension): read it as what it is
    if kind is None:
        raise DataValidationError(
            f"cannot tell the file format of {name or 'the upload'!r}. Supported: "
            f"{', '.join(SUPPORTED_FORMATS)} (extensions .csv .tsv .txt .jsonl .json .parquet, "
            "optionally compressed .gz/.bz2/.xz/.zip). Fix: rename the file or pass fmt=",
            name,
        )
    if kind == "parquet":
        df = _parse_parquet(raw, name)
    else:
        # CSV/TSV are parsed from the bytes: decoding first held the text two or three
        # more times (str, its strip(), the StringIO buffer), 10x the file in memory.
        start = _check_utf8(raw, name)  # past a UTF-8 BOM
        if _BLANK.fullmatch(raw, start):
            raise DataValidationError(
                "the file is empty. Fix: upload a file with a header and data rows", name
            )
        header = _header_line(raw, start)
        if kind == "txt":
            kind = "tsv" if "\t" in header else "csv"
        if kind in ("csv", "tsv"):
            sep = "\t" if kind == "tsv" else ","
            df = _parse_delimited(raw, header, sep, name)
            hint = _delimiter_hint(header, sep)
            if len(df.columns) == 1 and hint:  # one column can never be text + label
                raise DataValidationError(f"the file has a single column. {hint}", name)
        else:
            df = _parse_json(str(memoryview(raw)[start:], "utf-8"), kind, name)
    df.columns = [c.lstrip("\ufeff").strip() if isinstance(c, str) else c for c in df.columns]
    if df.shape[1] == 0 and len(df):
        why = " (every JSON object is empty, {})" if kind in ("json", "jsonl") else ""
        rows = f"{len(df):,} row{'s' if len(df) != 1 else ''}"
        raise DataValidationError(
            f"the file has {rows} but no columns{why}. Fix: give every row a text and a label, "
            "such as {\"text\": \"...\", \"label\": \"...\"}",
            name,
        )
    if len(df) == 0:
        cols = ", ".join(repr(c) for c in df.columns)
        if not cols:  # "[]"
            raise DataValidationError("the file holds no rows. Fix: add the labeled rows", name)
        raise DataValidationError(
            f"the file has a header (columns: {cols}) but no data rows. "
            "Fix: add the labeled rows below the header",
            name,
        )
    return df


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", "") or "")


def _format_of(name: str, fmt: str | None) -> tuple[str | None, str | None]:
    """(reader kind or None, compression or None) from fmt, else from the file name."""
    suffixes = [s.lower() for s in Path(os.path.basename(name)).suffixes] if name else []
    compression = _COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression is not None:
        suffixes = suffixes[:-1]
    if fmt is not None:
        key = "." + str(fmt).lower().lstrip(".")
        parts = key.split(".")[1:]
        if len(parts) == 2 and "." + parts[1] in _COMPRESSIONS:  # "csv.gz"
            compression = _COMPRESSIONS["." + parts[1]]
            key = "." + parts[0]
        if key not in _EXTENSIONS:
            raise ValueError(f"fmt must be one of {SUPPORTED_FORMATS} (or txt/json), got {fmt!r}")
        return _EXTENSIONS[key], compression
    kind = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    return kind, compression


def _fmt_size(n: int) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{n:,} bytes"


def _too_big(size: str, max_bytes: int, name: str) -> DataValidationError:
    return DataValidationError(
        f"the file is {size}, over the {_fmt_size(max_bytes)} limit. "
        "Fix: split it or take a sample (or compress it if only the upload size is the problem)",
        name,
    )


def _read_bytes(source: Any, name: str, max_bytes: int) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise DataValidationError("this is a folder, not a data file. Fix: pass the path of the "
                                      "CSV/TSV/JSONL/Parquet file inside it", name)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_big(_fmt_size(size), max_bytes, name)
        with open(path, "rb") as fh:
            return fh.read()
    size = getattr(source, "size", None)
    if isinstance(size, int) and size > max_bytes:
        raise _too_big(_fmt_size(size), max_bytes, name)
    if not isinstance(size, int) and hasattr(source, "seek") and hasattr(source, "tell"):
        try:
            source.seek(0, os.SEEK_END)
            size = source.tell()
        except (OSError, ValueError):
            size = None
        if isinstance(size, int) and size > max_bytes:
            raise _too_big(_fmt_size(size), max_bytes, name)
    if hasattr(source, "seek"):
        try:
            source.seek(0)
        except (OSError, ValueError):
            pass
    data = source.read(max_bytes + 1)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise _too_big(f"more than {_fmt_size(max_bytes)}", max_bytes, name)
    return bytes(data)


def _sniff_compression(raw: bytes) -> str | None:
    if raw[:2] == b"\x1f\x8b":
        return "gzip"
    if raw[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if raw[:4] == b"PK\x03\x04":
        return "zip"
    if raw[:3] == b"BZh" and raw[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):  # a block, or an empty stream
        return "bz2"
    return None


def _refuse_known_binary(raw: bytes, name: str) -> None:
    """A spreadsheet saved as Excel is the likeliest wrong upload; name it rather than
    report its bytes as "not valid UTF-8" (.xls) or its parts as "a zip archive of N files"
    (.xlsx, see _decompress)."""
    if raw[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _excel(name)


def _excel(name: str) -> DataValidationError:
    return DataValidationError(
        "this is an Excel workbook (or another Office file), not a CSV, TSV, JSONL or Parquet file. "
        "Fix: in Excel, File > Save As > 'CSV UTF-8 (Comma delimited)', and upload that",
        name,
    )


def _decompress(raw: bytes, compression: str, max_bytes: int, name: str) -> tuple[bytes, str]:
    """(decompressed bytes, inner file name for zip else "")."""
    inner = ""
    try:
        if compression == "zip":
            zf = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in zf.infolist() if not m.is_dir()]
            if any(m.filename == "[Content_Types].xml" for m in members):
                raise _excel(name)  # .xlsx (and .docx ...) are zip archives of XML parts
            if len(members) != 1:
                raise DataValidationError(
                    f"the zip archive holds {len(members)} files; it must hold exactly one data file",
                    name,
                )
            inner = members[0].filename
            stream: Any = zf.open(members[0])
        elif compression == "gzip":
            stream = gzip.GzipFile(fileobj=io.BytesIO(raw))
        elif compression == "bz2":
            stream = bz2.BZ2File(io.BytesIO(raw))
        else:
            stream = lzma.LZMAFile(io.BytesIO(raw))
        with stream:
            data = stream.read(max_bytes + 1)
    except DataValidationError:
        raise
    # zlib.error: a corrupt deflate stream (gzip, zip); NotImplementedError: an unsupported
    # zip compression method; RuntimeError: an encrypted zip member.
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError, ValueError) as exc:
        raise DataValidationError(
            f"the file is not a valid {compression} archive ({exc}). Fix: re-compress it or "
            "upload it uncompressed",
            name,
        ) from exc
    if len(data) > max_bytes:
        raise DataValidationError(
            f"the file unpacks to more than {_fmt_size(max_bytes)} (it is {_fmt_size(len(raw))} "
            f"compressed); {_fmt_size(max_bytes)} is the limit for a compressed file's content, so that a "
            "small file cannot fill the memory. Fix: split it or take a sample",
            name,
        )
    return data, inner


_BLANK = re.compile(rb"\s*")
_UTF8_CHUNK = 1 << 22


def _check_utf8(raw: bytes, name: str) -> int:
    """Check that raw is strict UTF-8, 4 MB at a time (no copy of the whole text).
    Returns where the content starts: 3 after a UTF-8 BOM, else 0."""
    view, pos = memoryview(raw), 0
    try:
        while pos < len(raw):
            end = min(pos + _UTF8_CHUNK, len(raw))
            pos += codecs.utf_8_decode(view[pos:end], "strict", end == len(raw))[1]
    except UnicodeDecodeError as exc:
        offset = pos + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        bad = raw[offset : offset + 1].hex()
        utf16 = " (it starts with a UTF-16 byte order mark: it is UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise DataValidationError(
            f"the file is not valid UTF-8{utf16}: byte 0x{bad} at byte offset {offset} "
            f"(line {line} of the file, the header being line 1) cannot be decoded. "
            "Fix: re-save the file as UTF-8 (Excel: Save As > 'CSV UTF-8'; pandas: "
            "df.to_csv(path, encoding='utf-8'))",
            name,
        ) from exc
    return 3 if raw[:3] == b"\xef\xbb\xbf" else 0


def _header_line(raw: bytes, start: int) -> str:
    """The first line (at most 1 MB of it), for the format and delimiter hints."""
    end = min(len(raw), start + 1_000_000)
    for sep in (b"\n", b"\r"):
        at = raw.find(sep, start, end)
        if at >= 0:
            end = at
    return raw[start:end].decode("utf-8", "replace")


_SEPARATORS = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "pipes (|)"}


def _delimiter_hint(header: str, sep: str) -> str:
    """A sentence naming the separator the header line seems to use instead of `sep`,
    or "" when the header uses `sep` (or no known separator at all)."""
    if sep in header:
        return ""
    counts = {d: header.count(d) for d in _SEPARATORS if d != sep}
    found = max(counts, key=lambda d: counts[d])
    if counts[found] == 0:
        return ""
    if found == "\t":
        fix = "rename the file to .tsv (or choose the TSV format)"
    elif found == ",":
        fix = "rename the file to .csv (or choose the CSV format)"
    else:
        fix = "re-save it comma-separated as .csv, or tab-separated as .tsv"
    what = "a .tsv file is read as tab-separated" if sep == "\t" else "a .csv file is read as comma-separated"
    return (
        f"The header line {header[:80]!r} has no {_SEPARATORS[sep]} but has "
        f"{_SEPARATORS[found]}: the file seems to be separated by {_SEPARATORS[found]}, while {what}. "
        f"Fix: {fix}"
    )


def _parse_delimited(raw: bytes, header: str, sep: str, name: str) -> pd.DataFrame:
    what = "TSV" if sep == "\t" else "CSV"

    def parse(quoting: int) -> pd.DataFrame:
        with warnings.catch_warnings():
            # index_col=False + this warning: a first data row with more fields than the
            # header (pandas would otherwise silently use the extra field as the index).
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.BytesIO(raw),  # shares raw's buffer; utf-8-sig drops a BOM
                encoding="utf-8-sig",
                sep=sep,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                index_col=False,
                quoting=quoting,
                skip_blank_lines=True,
            )

    try:
        try:
            return parse(csv.QUOTE_MINIMAL)
        except (pd.errors.ParserError, pd.errors.ParserWarning):
            if sep != "\t":
                raise
            return parse(csv.QUOTE_NONE)  # TSV texts often hold stray double quotes
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("the file is empty (no header row). Fix: add a header row", name) from exc
    except pd.errors.ParserWarning as exc:
        hint = _delimiter_hint(header, sep)
        raise DataValidationError(
            f"the {what} could not be parsed: data row 1 has more fields than the header row. "
            + (hint if hint else f"Fix: quote texts that contain the separator ({sep!r}) with double "
               "quotes, or save the data as JSONL/Parquet"),
            name,
        ) from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        hint = _delimiter_hint(header, sep)
        raise DataValidationError(
            f"the {what} could not be parsed: {detail} (lines count the header as line 1). "
            + (hint if hint else f"Fix: quote texts that contain the separator ({sep!r}), quotes or "
               "line breaks with double quotes (doubling quotes inside), or save the data as JSONL/Parquet"),
            name,
        ) from exc


def _parse_json(text: str, kind: str, name: str) -> pd.DataFrame:
    stripped = text.lstrip()
    if kind == "json" and stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataValidationError(
                f"the JSON could not be parsed: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
                "Fix: make it a JSON array of objects, or one JSON object per line (JSONL)",
                name,
            ) from exc
        except RecursionError as exc:
            raise DataValidationError(
                "the JSON is nested too deeply to read. Fix: make it a flat JSON array of objects "
                "such as {\"text\": ..., \"label\": ...}",
                name,
            ) from exc
        bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
        if bad is not None:
            raise DataValidationError(
                f"the JSON array's item {bad + 1} is not an object. "
                "Fix: make every item an object such as {\"text\": ..., \"label\": ...}",
                name,
            )
        return _frame_from_records(records, lambda i: f"item {i + 1} of the JSON array", name,
                                   bool(_SURROGATE_ESCAPE.search(text)))
    # Lines end at "\n" only: str.splitlines() would also split inside a JSON string at
    # characters that JSON allows unescaped (U+0085, U+2028, U+2029).
    lines = text.split("\n")
    try:
        records = [json.loads(line) for line in lines if line.strip()]
    except (json.JSONDecodeError, RecursionError):
        records = None
    if records is None or not all(type(r) is dict for r in records):
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problem = f"is not valid JSON ({exc.msg} at column {exc.colno})"
                break
            except RecursionError:
                problem = "is nested too deeply to read"
                break
            if not isinstance(value, dict):
                problem = "is not a JSON object"
                break
        raise DataValidationError(
            f"the JSONL could not be parsed: line {i} {problem}. Fix: write exactly one JSON "
            "object per line, such as {\"text\": \"...\", \"label\": \"...\"}",
            name,
        )

    def line_of(i: int) -> str:  # record i -> its line (blank lines are skipped)
        seen = -1
        for number, line in enumerate(lines, 1):
            seen += bool(line.strip())
            if seen == i:
                return f"line {number}"
        return f"record {i + 1}"

    return _frame_from_records(records, line_of, name, bool(_SURROGATE_ESCAPE.search(text)))


def _frame_from_records(records: list[dict], place: Any, name: str, surrogates: bool = True) -> pd.DataFrame:
    """A DataFrame of JSON objects that holds each value as it was written: a column of
    integers with nulls stays integers (nullable Int64, not 123.0), strings stay strings.
    Refused, naming the place (`place(i)` for record i) and the fix: a JSON object or
    array as a value, a column mixing strings, numbers and booleans, a number beyond
    64 bits (such as 1e400, read as infinity), a lone surrogate escape ("\\ud800", not a
    character: it cannot be written as UTF-8). Such values would be stored or exported
    in another form, or not at all. surrogates: False when the text has no \\uD800-\\uDFFF
    escape, to skip that scan."""
    bad_key = next((k for r in records[:1000] for k in r if _SURROGATE.search(k)), None) if surrogates else None
    if bad_key is not None:
        raise DataValidationError(
            f"a field name ({bad_key.encode('utf-8', 'backslashreplace').decode()!r}) holds a lone surrogate "
            "escape, half of a UTF-16 pair and not a character. Fix: rename that field",
            name,
        )
    df = pd.DataFrame(records, dtype=object)
    problems: list[str] = []
    columns: dict[Any, Any] = {}
    for col in df.columns:
        s = df[col]
        kind = pd.api.types.infer_dtype(s, skipna=True)
        missing = s.isna().to_numpy(dtype=bool)
        where = f"column {col!r}"
        if surrogates and kind in ("string", "mixed"):
            problem = _lone_surrogate(s, where, place)
            if problem:
                problems.append(problem)
                continue
        if kind == "string":
            columns[col] = s.astype("str")
        elif kind == "empty":
            columns[col] = s
        elif kind == "boolean":
            columns[col] = s.astype("boolean" if missing.any() else bool)
        elif kind == "integer":
            for dtype in ("Int64", "UInt64"):
                try:
                    arr = pd.array(s.tolist(), dtype=dtype)
                    break
                except (OverflowError, TypeError, ValueError):
                    arr = None
            if arr is None:
                i = next((i for i, v in enumerate(s) if not missing[i] and not -(2**63) <= v < 2**63), 0)
                problems.append(
                    f"{place(i)}: {where} holds the integer {s.iloc[i]}, beyond 64 bits. Fix: write it "
                    "as a string (in double quotes)"
                )
                continue
            columns[col] = pd.Series(arr, index=s.index) if missing.any() else pd.Series(
                arr.to_numpy(dtype="uint64" if arr.dtype == "UInt64" else "int64"), index=s.index)
        elif kind in ("floating", "mixed-integer-float"):
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            inf = np.flatnonzero(np.isinf(values))
            if inf.size:
                problems.append(
                    f"{place(int(inf[0]))}: {where} holds a number too large for a 64-bit float "
                    f"(such as 1e400), which reads as infinity ({inf.size} value{'s' if inf.size > 1 else ''}). "
                    "Fix: write it as a string (in double quotes), or a smaller number"
                )
                continue
            columns[col] = pd.Series(values, index=s.index)
        else:
            problems.append(_mixed_json_column(s, missing, where, place))
    if problems:
        raise DataValidationError(problems, name)
    return pd.DataFrame(columns, index=df.index, columns=df.columns)


_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(s: pd.Series, where: str, place: Any) -> str:
    """The problem of the first string holding a lone surrogate ("" if none). json.loads
    turns the escape "\\ud800" without its pair into a str that cannot be encoded."""
    for i, v in enumerate(s.tolist()):
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                return (
                    f"{place(i)}: {where} holds the escape \\u{ord(m.group()):04x} without its pair: half of a "
                    "UTF-16 surrogate pair is not a character, so the text cannot be stored or exported as "
                    "UTF-8. Fix: remove it, or write the whole character (for example \\ud83d\\ude00 for an emoji)"
                )
    return ""


def _mixed_json_column(s: pd.Series, missing: np.ndarray, where: str, place: Any) -> str:
    """The problem of a JSON column holding objects, arrays or a mix of value types."""
    seen: dict[str, int] = {}
    for i, v in enumerate(s.tolist()):
        if missing[i]:
            continue
        if isinstance(v, (dict, list)):
            what = "a JSON object" if isinstance(v, dict) else "a JSON array"
            return (
                f"{place(i)}: {where} holds {what} ({_short_json(v)}); a table cell must be a "
                "string, a number, true/false or null. Fix: store it as a string (for example "
                "json.dumps(value)), or drop that field"
            )
        seen.setdefault("a string" if isinstance(v, str) else "true/false" if isinstance(v, bool) else "a number", i)
    shown = " and ".join(f"{t} ({place(i)}: {s.iloc[i]!r})" for t, i in list(seen.items())[:3])
    return (
        f"{where} mixes value types: {shown}. One column must hold one type, or its values would "
        "be stored and exported in another form. Fix: write every value of that field the same "
        "way (for example all in double quotes)"
    )


def _short_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_parquet(raw: bytes, name: str) -> pd.DataFrame:
    if not raw:
        raise DataValidationError("the file is empty. Fix: upload a Parquet file with data rows", name)
    try:
        df = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataValidationError(
            f"the file is not a readable Parquet file ({type(exc).__name__}: {exc}). "
            "Fix: re-export it as Parquet, or upload CSV/TSV/JSONL",
            name,
        ) from exc
    # A named index (df.set_index("review_id").to_parquet(...)) is a column the person
    # gave: keep it as a column, or it would be missing from the export. Unnamed index
    # levels are pandas' row numbers and are dropped, as for the other formats.
    named = [n for n in df.index.names if n is not None]
    if named:
        clash = [n for n in named if n in df.columns]
        if clash:
            raise DataValidationError(
                f"the Parquet file's index {clash[0]!r} has the same name as one of its columns, so "
                "it cannot be kept as a column. Fix: rename the index or the column before saving",
                name,
            )
        df = df.reset_index(level=named)
    return df.reset_index(drop=True)


# ---- validation and label mapping --------------------------------------------------


def _rows(positions: np.ndarray) -> str:
    """'3 rows (rows 2, 5, 9)' for 0-based positions (shown 1-based, first few)."""
    rows = np.asarray(positions) + 1
    shown = ", ".join(str(int(r)) for r in rows[:_EXAMPLE_ROWS])
    more = ", ..." if len(rows) > _EXAMPLE_ROWS else ""
    noun = "row" if len(rows) == 1 else "rows"
    return f"{len(rows)} {noun} ({noun} {shown}{more})"


def _is_int_string(name: str) -> bool:
    try:
        return str(int(name)) == name
    except ValueError:
        return False


@dataclass
class _ParsedLabels:
    """A label column, normalised. kind "int": ints valid where ~missing & ~fractional &
    ~invalid; kind "str": strings valid where ~missing & ~fractional & ~invalid."""

    kind: str
    missing: np.ndarray  # (R,) bool
    fractional: np.ndarray  # (R,) bool, numbers that are not whole
    ints: np.ndarray | None  # (R,) int64 (kind "int")
    strings: np.ndarray  # (R,) object: the label as text ("" where missing)
    invalid: np.ndarray | None = None  # (R,) bool, values that cannot be a class (a list, inf, ...)
    invalid_what: str = ""  # what those values are, for the message
    notes: list[str] = dataclasses.field(default_factory=list)  # changes the person must see

    def __post_init__(self) -> None:
        if self.invalid is None:
            self.invalid = np.zeros(len(self.missing), dtype=bool)

    @property
    def ok(self) -> np.ndarray:
        return ~self.missing & ~self.fractional & ~self.invalid


# A text made of these alone shows nothing: whitespace, control characters, and the
# invisible format characters (soft hyphen, zero-width space/joiners, bidi controls, word
# joiner, variation selectors, BOM, Hangul fillers, tags).
_INVISIBLE = (
    "[\\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]+"
)

# A label column is read as integers only when every label is an integer written the
# one canonical way ("-1", "0", "12"; not "01", "+1", "1.0" or " 1"), so that reading
# it as a number changes no label's text and merges no two labels.
_CANONICAL_INT = r"-?(?:0|[1-9][0-9]*)"
_INT64_MAX = 2**63 - 1


def _not_label_kind(value: Any) -> str | None:
    """What a cell is when it cannot be a class label or a text (None: it can)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(value, Mapping):
        return "dicts (structs)"
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return "lists"
    if isinstance(value, (str, int, float, bool, np.number, np.bool_)):
        return None
    return type(value).__name__ + " objects"


def _non_scalar_cells(s: pd.Series, missing: np.ndarray) -> tuple[np.ndarray, str]:
    """(R,) bool: cells of an object column that hold lists, dicts, bytes or other objects
    (a Parquet list/struct/binary column, a DataFrame built by hand); and what they are."""
    bad = np.zeros(len(s), dtype=bool)
    if isinstance(s.dtype, pd.ArrowDtype):
        import pyarrow as pa

        t = s.dtype.pyarrow_dtype
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            bad[~missing] = True
            what = "bytes" if pa.types.is_binary(t) or pa.types.is_large_binary(t) else f"{t} values"
            return bad, what
        return bad, ""
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        return bad, ""
    kinds: dict[str, None] = {}
    for i, v in enumerate(s.to_numpy(dtype=object)):
        if missing[i]:
            continue
        what = _not_label_kind(v)
        if what is not None:
            bad[i] = True
            kinds.setdefault(what, None)
    return bad, ", ".join(kinds)


def _parse_labels(series: pd.Series, column: str = "label", role: str = "label") -> _ParsedLabels:
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    n = len(s)
    missing = np.array(s.isna(), dtype=bool)  # a writable copy
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(object)
    if pd.api.types.is_integer_dtype(s.dtype):
        filled = s.fillna(0)
        if pd.api.types.is_unsigned_integer_dtype(s.dtype) and n and int(filled.max()) > _INT64_MAX:
            # beyond int64 (a uint64 column): kept as the exact digits, never wrapped around
            strings = np.array([str(int(v)) for v in filled.to_numpy(dtype=object)], dtype=object)
            strings[missing] = ""
            return _ParsedLabels("str", missing, np.zeros(n, bool), None, strings)
        ints = filled.to_numpy(dtype=np.int64)
        strings = np.where(missing, "", ints.astype(str)).astype(object)
        return _ParsedLabels("int", missing, np.zeros(n, bool), ints, strings)
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        huge = ~missing & ~(np.abs(np.where(missing, 0.0, values)) < 2**53)  # inf, or no longer exact
        safe = np.where(missing | huge, 0.0, values)
        fractional = ~missing & ~huge & (safe != np.round(safe))
        ints = np.round(safe).astype(np.int64)
        strings = np.where(missing, "", np.where(fractional | huge, values.astype(str), ints.astype(str)))
        return _ParsedLabels("int", missing, fractional, ints, strings.astype(object), huge,
                             "numbers too large (or infinite)" if huge.any() else "")
    invalid, invalid_what = _non_scalar_cells(s, missing)
    raw = s.astype(object).where(~(missing | invalid), "").map(str)
    text = raw.str.strip()
    strings = text.to_numpy(dtype=object)
    missing |= (strings == "") & ~invalid
    ok = ~missing & ~invalid
    notes: list[str] = []
    spaced = ok & (raw.to_numpy(dtype=object) != strings)
    if spaced.any():
        rows = np.flatnonzero(spaced)
        pairs = dict.fromkeys((raw.iloc[i], strings[i]) for i in rows[:1000])
        examples = ", ".join(f"{a!r} -> {b!r}" for a, b in list(pairs)[:3])
        notes.append(
            f"{role} column {column!r} has labels with spaces around them in {_rows(rows)} "
            f"({examples}): the spaces are removed, so each is the same class as the label without "
            "them. Fix: if the spaces mark a different class, name that class differently"
        )
    valid = pd.Series(strings[ok], dtype=object)
    if valid.size and valid.str.fullmatch(_CANONICAL_INT).all():
        try:
            ints = np.zeros(n, dtype=np.int64)
            ints[ok] = valid.to_numpy(dtype=object).astype(np.int64)
        except OverflowError:  # beyond int64: exact text, not numbers
            pass
        else:
            return _ParsedLabels("int", missing, np.zeros(n, bool), ints, strings, invalid, invalid_what, notes)
    numbers = pd.to_numeric(valid, errors="coerce").to_numpy(dtype=np.float64)
    fractional = np.zeros(n, dtype=bool)
    if numbers.size and np.isfinite(numbers).all():
        # every label is a number, but not every one a canonical integer
        fractional[ok] = numbers != np.round(numbers)
        if not fractional.any():
            notes += _same_number_notes(strings, ok, numbers, column, role)
    return _ParsedLabels("str", missing, fractional, None, strings, invalid, invalid_what, notes)


def _same_number_notes(strings: np.ndarray, ok: np.ndarray, numbers: np.ndarray, column: str,
                       role: str) -> list[str]:
    """A note for numeric labels written in several ways ("1", "01", "1.0"): they are kept
    as different classes, which may not be what the person meant."""
    spellings = pd.DataFrame({"text": strings[ok], "value": numbers}).drop_duplicates("text")
    groups = spellings.groupby("value")["text"].agg(list)
    groups = groups[groups.map(len) > 1]
    if groups.empty:
        return []
    shown = "; ".join(" and ".join(repr(t) for t in g[:4]) for g in groups.tolist()[:3])
    more = f" (and {len(groups) - 3} more numbers)" if len(groups) > 3 else ""
    return [
        f"{role} column {column!r} writes the same number in different ways: {shown}{more}. Labels keep "
        "their exact text, so these are different classes. Fix: if they are one class, write it one "
        "way in every row"
    ]


def _map_labels(p: _ParsedLabels, names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """(ids (R,) int64 with -1 where missing/fractional/unknown, label names)."""
    ok = p.ok
    if names is None:
        if p.kind == "int":
            uniq = np.unique(p.ints[ok])
            ids = np.where(ok, np.searchsorted(uniq, p.ints), -1).astype(np.int64)
            return ids, [str(int(u)) for u in uniq]
        uniq_s = sorted(set(p.strings[ok].tolist()))
        return _codes(p.strings, uniq_s, ok), uniq_s
    if p.kind == "int" and not any(_is_int_string(nm) for nm in names):
        ids = np.where(ok & (p.ints >= 0) & (p.ints < len(names)), p.ints, -1).astype(np.int64)
        return ids, list(names)
    keys = np.where(ok, p.strings, "") if p.kind == "str" else np.where(ok, p.ints.astype(str), "")
    return _codes(keys.astype(object), list(names), ok), list(names)


def _codes(values: np.ndarray, names: list[str], ok: np.ndarray) -> np.ndarray:
    codes = pd.Index(names).get_indexer(values).astype(np.int64)  # -1 = not a name
    return np.where(ok, codes, -1)


def _soft_names_fit(p: _ParsedLabels, names: list[str]) -> bool:
    """Whether names from a labels.txt cover every (valid) label of the column."""
    ok = p.ok
    if not ok.any():
        return False
    ids, _ = _map_labels(p, names)
    return bool((ids[ok] >= 0).all())


def _check_names(label_names: Any) -> list[str]:
    names = [str(n) for n in label_names]
    if not names or any(not n.strip() for n in names):
        raise ValueError("label_names must be a non-empty list of non-empty class names")
    dupes = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if dupes:
        raise ValueError(f"label_names has duplicate names: {dupes}")
    return names


def _missing_column(column: str, role: str, arg: str, columns: list[Any]) -> str:
    have = ", ".join(repr(c) for c in columns) or "(none)"
    lower = {str(c).strip().lower(): c for c in columns}
    guess = lower.get(column.strip().lower())
    if guess is None:
        close = difflib.get_close_matches(column, [str(c) for c in columns], n=1)
        guess = close[0] if close else None
    hint = f" Did you mean {guess!r}?" if guess is not None else ""
    return (
        f"{role} column {column!r} not found; the columns are: {have}.{hint} "
        f"Fix: pass {arg}= with the right column name, or rename the column"
    )


def dataset_from_frame(
    df: pd.DataFrame,
    text_column: str = "text",
    label_column: str = "label",
    true_label_column: str | None = None,
    label_names: list[str] | None = None,
    source: str = "",
) -> TextDataset:
    """Validate a table of R rows and build a TextDataset of N = R rows.

    label_names: (K,) class names to map labels into, as for a test set (pass the
        train set's `label_names`); a label not among them is an error, and a single
        present class is allowed. None = derive the names from the data (see the
        module docstring); then at least two classes must be present.
    Raises DataValidationError listing every problem found.
    """
    return _build_dataset(df, text_column, label_column, true_label_column, label_names, None, source)


def _build_dataset(
    df: pd.DataFrame,
    text_column: str,
    label_column: str,
    true_label_column: str | None,
    label_names: list[str] | None,
    file_names: list[str] | None,
    source: str,
) -> TextDataset:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(df).__name__}")
    names = _check_names(label_names) if label_names is not None else None
    problems: list[str] = []
    notes: list[str] = []  # accepted, but the person must see them before using the data
    row_note = False
    columns = list(df.columns)
    usable: dict[str, bool] = {}
    roles: dict[str, str] = {}
    for column, role, arg in (
        (text_column, "text", "text_column"),
        (label_column, "label", "label_column"),
        (true_label_column, "true-label", "true_label_column"),
    ):
        if column is None:
            continue
        if column in roles:  # one column cannot be both: the model would read the answer
            raise DataValidationError(
                f"the column {column!r} is chosen as both the {roles[column]} column and the {role} column. "
                "Fix: choose a different column for each (text_column=, label_column=, true_label_column=)",
                source,
            )
        roles[column] = role
        usable[column] = False
        if column not in df.columns:
            problems.append(_missing_column(column, role, arg, columns))
        elif isinstance(df[column], pd.DataFrame):
            problems.append(f"there are several columns named {column!r}. Fix: rename all but one")
        else:
            usable[column] = True
    if len(df) < 2:
        problems.append(
            f"the data has {len(df)} row{'s' if len(df) != 1 else ''}; at least 2 are needed. "
            "Fix: add labeled rows"
        )

    # texts: kept verbatim; missing, empty or whitespace-only is a problem
    texts: list[str] = []
    if usable[text_column]:
        raw_text = df[text_column]
        text_missing = raw_text.isna().to_numpy(dtype=bool)
        # lists, structs and bytes (Parquet) are not text: their repr would be trained on
        not_text, what = _non_scalar_cells(raw_text, text_missing)
        if not_text.any():
            row_note = True
            problems.append(
                f"text column {text_column!r} holds {what}, not text, in {_rows(np.flatnonzero(not_text))}. "
                "Fix: choose the column that holds the texts, or convert it to strings first "
                "(bytes: decode them as UTF-8)"
            )
        text_str = raw_text.astype(object).where(~(text_missing | not_text), "").map(str)
        blank = ~not_text & (text_missing | (text_str.str.strip() == "").to_numpy(dtype=bool))
        if blank.any():
            row_note = True
            problems.append(
                f"text column {text_column!r} is empty, whitespace-only or missing (NaN/null) in "
                f"{_rows(np.flatnonzero(blank))}. Fix: fill in those texts or delete those rows"
            )
        texts = text_str.tolist()
        shown = ~(blank | not_text)
        invisible = np.zeros(len(df), dtype=bool)
        invisible[shown] = text_str[shown].str.fullmatch(_INVISIBLE).to_numpy(dtype=bool)
        if invisible.any():
            notes.append(
                f"text column {text_column!r} has texts made only of invisible characters (zero-width "
                f"spaces or joiners, control or formatting characters) in {_rows(np.flatnonzero(invisible))}: "
                "the model sees nothing there. Fix: fill in those texts or delete those rows"
            )

    # labels, then the true labels in the same label space
    ids = np.zeros(0, dtype=np.int64)
    if usable[label_column]:
        parsed = _parse_labels(df[label_column], label_column, "label")
        notes += parsed.notes
        if names is None and file_names is not None and _soft_names_fit(parsed, file_names):
            names = file_names
        given_names = names is not None
        ids, names = _map_labels(parsed, names)
        row_note |= _label_problems(parsed, ids, names, label_column, "label", given_names, problems)
        present = np.unique(ids[ids >= 0])
        # With label_names passed in (a test set) the classes come from the train set,
        # and a small test set with one class is still scorable.
        if present.size == 1 and label_names is None:
            problems.append(
                f"label column {label_column!r} has only one class ({names[present[0]]!r}); at "
                "least two classes are needed to find wrong labels. Fix: check the label "
                "column, or add rows of the other classes"
            )
        # Every row its own class: an id or text column chosen as the label column. (Many
        # classes are fine; a class with no second example cannot be learned or checked.)
        elif label_names is None and len(df) >= _ID_COLUMN_MIN_ROWS and present.size == len(df):
            problems.append(
                f"label column {label_column!r} has a different value in every row ({len(df)} rows, "
                f"{len(df)} classes), so no class has a second example: it looks like an id or text "
                "column, not class labels. Fix: pass label_column= with the column that holds the "
                "classes"
            )
        elif label_names is None and present.size > 1:
            counts = np.bincount(ids[ids >= 0], minlength=len(names))
            single = [names[k] for k in np.flatnonzero(counts == 1)]
            if single:
                shown_names = ", ".join(repr(s) for s in single[:8]) + (", ..." if len(single) > 8 else "")
                notes.append(
                    f"label column {label_column!r} has {len(single)} class{'es' if len(single) > 1 else ''} "
                    f"with a single sample ({shown_names}): one example is too few to learn a class from, "
                    "or to tell whether its label is wrong. Fix: add examples of those classes, or merge "
                    "or delete them"
                )

    true_ids = None
    if true_label_column is not None and usable[true_label_column] and names is not None:
        true_parsed = _parse_labels(df[true_label_column], true_label_column, "true label")
        notes += true_parsed.notes
        true_ids, _ = _map_labels(true_parsed, names)
        row_note |= _label_problems(
            true_parsed, true_ids, names, true_label_column, "true label", True, problems
        )

    if problems:
        raise DataValidationError(problems, source, row_note=row_note)
    return TextDataset(
        texts=texts,
        labels=ids,
        label_names=names,
        true_labels=true_ids,
        frame=df.reset_index(drop=True),
        source=source,
        text_column=text_column,
        label_column=label_column,
        true_label_column=true_label_column,
        warnings=notes,
    )


def _label_problems(
    p: _ParsedLabels,
    ids: np.ndarray,
    names: list[str],
    column: str,
    role: str,
    names_given: bool,
    problems: list[str],
) -> bool:
    """Append the problems of one mapped label column; True if any lists rows."""
    found = False
    if p.missing.any():
        found = True
        problems.append(
            f"{role} column {column!r} is empty or missing (NaN/null) in "
            f"{_rows(np.flatnonzero(p.missing))}. Fix: fill in those labels or delete those rows"
        )
    if p.fractional.any():
        found = True
        rows = np.flatnonzero(p.fractional)
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(p.strings[rows].tolist()))[:5])
        problems.append(
            f"{role} column {column!r} has numbers that are not whole ({examples}) in "
            f"{_rows(rows)}; numeric labels must be integer class ids, not floats. "
            "Fix: use integer ids or class names"
        )
    if p.invalid.any():
        found = True
        problems.append(
            f"{role} column {column!r} holds {p.invalid_what}, which cannot be class labels, in "
            f"{_rows(np.flatnonzero(p.invalid))}. Fix: choose the column that holds the classes (names "
            "or integer ids), or convert those values to text first"
        )
    unknown = (ids < 0) & p.ok
    if unknown.any() and names_given:
        found = True
        rows = np.flatnonzero(unknown)
        values = list(dict.fromkeys(p.strings[rows].tolist()))
        shown = ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        known = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        lead = (
            "test set has labels the train set lacks"
            if role == "label"
            else f"true-label column {column!r} has values outside the label space"
        )
        problems.append(
            f"{lead}: {shown} ({_rows(rows)}); the known classes are {known}. "
            "Fix: delete those rows, correct the labels, or train on data that has those classes"
        )
    return found


# ---- files ---------------------------------------------------------------------------


def load_label_names(path: str | os.PathLike) -> list[str] | None:
    """Class names from a `labels.txt` beside the data file `path` (or `path` itself if
    it is a labels.txt, or inside it if it is a folder): one name per line, line i
    names class id i. None when there is no such file."""
    p = Path(path)
    if p.is_dir():
        candidate = p / "labels.txt"
    elif p.name == "labels.txt":
        candidate = p
    else:
        candidate = p.parent / "labels.txt"
    if not candidate.is_file():
        return None
    try:
        text = candidate.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            "labels.txt is not valid UTF-8. Fix: re-save it as UTF-8", str(candidate)
        ) from exc
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    problems = []
    blank = [i + 1 for i, line in enumerate(lines) if not line]
    if blank:
        problems.append(f"labels.txt has blank lines ({blank[:8]}); line i must name class i-1")
    dupes = sorted(line for line, count in collections.Counter(lines).items() if line and count > 1)
    if dupes:
        problems.append(f"labels.txt names these classes more than once: {dupes}")
    if problems:
        raise DataValidationError(problems, str(candidate))
    return lines or None


def load_dataset(
    path_or_file: str | os.PathLike | BinaryIO,
    text_column: str = "text",
    label_column: str = "label",
    true_label_column: str | None = None,
    label_names: list[str] | None = None,
    fmt: str | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> TextDataset:
    """Read and validate a labeled text file (path or upload) into a TextDataset.

    Without `label_names`, a `labels.txt` beside a file on disk names the classes
    when it covers every label (integer labels: at least max+1 lines). Raises
    DataValidationError (see `read_table` and `dataset_from_frame`).
    """
    df = read_table(path_or_file, fmt=fmt, max_bytes=max_bytes)
    name = _source_name(path_or_file)
    file_names = None
    if label_names is None and isinstance(path_or_file, (str, os.PathLike)):
        file_names = load_label_names(path_or_file)
    return _build_dataset(
        df,
        text_column,
        label_column,
        true_label_column,
        label_names,
        file_names,
        os.path.basename(name) if name else "upload",
    )


def _as_ids(values: Any, what: str, n: int, k: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {arr.shape}")
    if n and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"{what} must be integer class ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if n and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"{what} must be class ids in 0..{k - 1}, got {arr.min()}..{arr.max()}")
    return arr
