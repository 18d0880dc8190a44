"""The studio's persistent state: one SQLite file holding datasets, runs, per-epoch
reports, live progress and the review-decision log.

Layout under the home folder (`default_home()`: $SELFMIX_HOME, else ~/.selfmix_studio):

    <home>/studio.sqlite3          this database (WAL mode: -wal / -shm files beside it)
    <home>/datasets/<id>.parquet   each imported dataset's frame, written atomically
    <home>/runs/<run_id>/          a run's folder (checkpoints), see `Store.run_dir`

Concurrency: the background training thread and the Streamlit script thread share one
`Store`. Every thread gets its own connection (threading.local); the database is in
WAL mode so readers never block the writer, each write is one `BEGIN IMMEDIATE`
transaction, and `busy_timeout` makes a writer wait (up to 5 s) for another instead
of failing with "database is locked".

Ids: datasets and runs have 12-hex-digit random ids (safe in file names); decisions
have increasing integer ids (their order is the log's order). Timestamps are UTC ISO
8601 strings with milliseconds.

The decision table is append-only (SQLite triggers refuse UPDATE and DELETE on it):
undoing a decision appends an "undo" row that names the decision it cancels. Each row
also records the `session` that wrote it (a browser tab of the app; NULL for the CLI and
for rows from before schema 2) and its `batch` (one token per add_decision(s) call: the
decisions of one review action, e.g. a bulk accept, share it), so that Undo takes back a
tab's own last action, whole, and never another tab's. A write may name the decision it
expects each sample to have (`expected`): if another tab changed it meanwhile, nothing is
written and StaleDecisionError says which samples. Since schema 3 a review action may
carry a `note` naming the samples it was made on ("selected on the map").

Schema 3 (issue #13) also keeps the pooled sentence embeddings of an epoch's scoring pass
(float16, `save_embeddings`) for the epochs the Explore page can show: a saved report's
embeddings are kept for its epoch and its recommended epoch, every other epoch's are
deleted (at 100k texts one epoch of 384-wide embeddings is 77 MB). The 2-D projections
of those embeddings are cached beside them (`save_projection`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .reports import EpochReport

__all__ = [
    "SCHEMA_VERSION",
    "RUN_STATUSES",
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "CONTROL_ACTIONS",
    "DECISION_ACTIONS",
    "PROGRESS_FIELDS",
    "NotFoundError",
    "SchemaVersionError",
    "StaleDecisionError",
    "Store",
    "default_home",
]

SCHEMA_VERSION = 3
DB_FILENAME = "studio.sqlite3"
BUSY_TIMEOUT_MS = 5000

RUN_STATUSES = ("created", "running", "paused", "stopping", "stopped", "finished", "failed")
ACTIVE_STATUSES = ("running", "paused", "stopping")
TERMINAL_STATUSES = ("stopped", "finished", "failed")
CONTROL_ACTIONS = ("pause", "resume", "stop")
DECISION_ACTIONS = ("relabel", "keep", "drop", "accept")
PROGRESS_FIELDS: dict[str, type] = {
    "epoch": int,
    "phase": str,
    "step": int,
    "steps_in_epoch": int,
    "samples_seen": int,
    "seconds": float,
    "message": str,
}


class NotFoundError(ValueError):
    """An id that is not in the store (a ValueError, so callers may catch either)."""


class SchemaVersionError(ValueError):
    """The database was written by a newer SelfMix Studio than this one."""


class StaleDecisionError(ValueError):
    """A decision was written against a state of its sample that has changed since (another
    tab or session decided or undid it meanwhile); nothing was written.

    conflicts: {sample_index: the sample's current decision (a current_decisions() value)
    or None when it has none now}.
    """

    def __init__(self, conflicts: Mapping[int, Mapping[str, Any] | None]) -> None:
        self.conflicts = dict(conflicts)
        shown = ", ".join(f"#{i}" for i in list(self.conflicts)[:10]) + (", …" if len(self.conflicts) > 10 else "")
        n = len(self.conflicts)
        super().__init__(
            f"{n} sample{'s were' if n != 1 else ' was'} changed by another tab or session since the "
            f"decision was shown ({shown}); nothing was written"
        )


def default_home() -> Path:
    """$SELFMIX_HOME if set (and non-empty), else ~/.selfmix_studio. Not created here."""
    env = os.environ.get("SELFMIX_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".selfmix_studio"


# ---- schema ------------------------------------------------------------------------------

_RUN_STATUS_SQL = ", ".join(f"'{s}'" for s in RUN_STATUSES)
_CONTROL_SQL = ", ".join(f"'{s}'" for s in CONTROL_ACTIONS)
_DECISION_SQL = ", ".join(f"'{s}'" for s in (*DECISION_ACTIONS, "undo"))

_SCHEMA_V1 = f"""
CREATE TABLE datasets (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    n_rows      INTEGER NOT NULL,
    file        TEXT NOT NULL,            -- relative to the home folder
    meta        TEXT NOT NULL,            -- JSON object
    created_at  TEXT NOT NULL
);
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    dataset_id   TEXT NOT NULL REFERENCES datasets(id),
    name         TEXT,
    config       TEXT NOT NULL,           -- JSON object
    status       TEXT NOT NULL CHECK (status IN ({_RUN_STATUS_SQL})),
    error        TEXT,
    total_epochs INTEGER,
    control      TEXT CHECK (control IS NULL OR control IN ({_CONTROL_SQL})),
    control_at   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX runs_by_created ON runs(created_at);
CREATE TABLE epoch_reports (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    epoch     INTEGER NOT NULL,
    phase     TEXT NOT NULL,
    scalars   TEXT NOT NULL,              -- JSON: EpochReport.scalars_dict()
    arrays    BLOB NOT NULL,              -- EpochReport.arrays_bytes() (.npz)
    saved_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE progress (
    run_id          TEXT PRIMARY KEY REFERENCES runs(id),
    epoch           INTEGER,
    phase           TEXT,
    step            INTEGER,
    steps_in_epoch  INTEGER,
    samples_seen    INTEGER,
    seconds         REAL,
    message         TEXT,
    updated_at      TEXT NOT NULL
);
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    time          TEXT NOT NULL,
    sample_index  INTEGER NOT NULL CHECK (sample_index >= 0),
    old_label     INTEGER,
    new_label     INTEGER,
    action        TEXT NOT NULL CHECK (action IN ({_DECISION_SQL})),
    undoes        INTEGER REFERENCES decisions(id),
    CHECK ((action = 'undo') = (undoes IS NOT NULL))
);
CREATE INDEX decisions_by_run ON decisions(run_id, id);
CREATE UNIQUE INDEX decisions_undone_once ON decisions(undoes) WHERE undoes IS NOT NULL;
CREATE TRIGGER decisions_append_only_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only: add a new decision or an undo instead');
END;
CREATE TRIGGER decisions_append_only_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only: add a new decision or an undo instead');
END;
"""


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    for statement in _split_sql(_SCHEMA_V1):
        conn.execute(statement)


# Schema 2 (issue #10): who wrote each decision, and which decisions were one action.
_SCHEMA_V2 = """
ALTER TABLE decisions ADD COLUMN session TEXT;
ALTER TABLE decisions ADD COLUMN batch TEXT;
"""
# No index on them: a bulk accept of 100k decisions stays one fast insert, and the
# queries that read them (Undo, the list of recent actions) walk decisions_by_run.


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Existing decisions keep session = batch = NULL (an undo groups those by timestamp,
    as before)."""
    for statement in _split_sql(_SCHEMA_V2):
        conn.execute(statement)


# Schema 3 (issue #13): an action's note (the selection it was made on), an epoch's
# sentence embeddings and their cached 2-D projections.
_SCHEMA_V3 = """
ALTER TABLE decisions ADD COLUMN note TEXT;
CREATE TABLE embeddings (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    epoch     INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    dim       INTEGER NOT NULL,
    data      BLOB NOT NULL,              -- (n, dim) float16, C order, little-endian
    saved_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE projections (
    run_id    TEXT NOT NULL REFERENCES runs(id),
    epoch     INTEGER NOT NULL,
    method    TEXT NOT NULL,
    coords    BLOB NOT NULL,              -- (n, 2) float32, C order, little-endian
    seconds   REAL NOT NULL,
    saved_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch, method)
);
"""


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """Existing decisions keep note = NULL; existing runs have no embeddings (the Explore
    page says so: a run trained before schema 3 has nothing to draw)."""
    for statement in _split_sql(_SCHEMA_V3):
        conn.execute(statement)


# MIGRATIONS[v] brings a database at version v - 1 to version v.
MIGRATIONS = {1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3}


def _split_sql(script: str) -> list[str]:
    """Split a schema script into statements (triggers contain inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") or not line.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise AssertionError(f"incomplete SQL statement in schema: {buf!r}")
    return out


# ---- small helpers -----------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _new_id() -> str:
    return secrets.token_hex(6)


def _new_batch() -> str:
    """The token shared by the decisions of one write (one review action)."""
    return secrets.token_hex(8)


_UNCHECKED = object()  # add_decision(expected=...) not given: no staleness check


def _check_session(session: Any) -> str | None:
    if session is not None and (not isinstance(session, str) or not session):
        raise ValueError(f"session must be a non-empty string or None, got {session!r}")
    return session


def _check_expected_map(expected: Any) -> dict[int, int | None]:
    if not isinstance(expected, Mapping):
        raise ValueError(
            f"expected must be a dict {{sample_index: decision id or None}}, got {type(expected).__name__}"
        )
    return {_as_index(k, "expected sample_index"): (None if _is_missing(v) else _as_index(v, "expected decision id"))
            for k, v in expected.items()}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, default=_json_default)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{what} must be JSON-serialisable ({e}); pass plain dicts, lists, str, numbers, "
            "bools or None"
        ) from None


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty id string, got {value!r}")
    return value


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _as_index(v: Any, what: str) -> int:
    """A non-negative integer (python/numpy int, or a float holding an integer)."""
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{what} must be a non-negative integer, got the bool {v!r}")
    if isinstance(v, (int, np.integer)):
        i = int(v)
    elif isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
        i = int(v)
    else:
        raise ValueError(f"{what} must be a non-negative integer, got {v!r}")
    if i < 0:
        raise ValueError(f"{what} must be >= 0, got {i}")
    return i


def _normalise_decision(
    sample_index: Any, old_label: Any, new_label: Any, action: Any
) -> tuple[int, int, int | None, str]:
    """Validate one decision; returns (sample_index, old_label, new_label, action).

    relabel / accept need new_label; keep stores new_label = old_label (the label
    stays); drop stores new_label = None.
    """
    if action not in DECISION_ACTIONS:
        raise ValueError(f"action must be one of {DECISION_ACTIONS}, got {action!r}")
    si = _as_index(sample_index, "sample_index")
    ol = _as_index(old_label, "old_label")
    if action in ("relabel", "accept"):
        if _is_missing(new_label):
            raise ValueError(
                f"action {action!r} needs new_label (the class index to relabel sample {si} to)"
            )
        nl: int | None = _as_index(new_label, "new_label")
    elif action == "keep":
        if not _is_missing(new_label) and _as_index(new_label, "new_label") != ol:
            raise ValueError(
                f"action 'keep' keeps old_label ({ol}) but new_label={new_label!r} was given; "
                "pass new_label=None or use action='relabel'"
            )
        nl = ol
    else:  # drop
        if not _is_missing(new_label):
            raise ValueError(f"action 'drop' takes new_label=None, got {new_label!r}")
        nl = None
    return si, ol, nl, str(action)


# ---- the store -----------------------------------------------------------------------------


class Store:
    """One studio home folder and its SQLite database. Safe to share between threads.

    Store(home=None): home defaults to `default_home()`; the folder, its datasets/ and
    runs/ subfolders and the database are created when missing. Raises
    SchemaVersionError (a ValueError) when the file was written by a newer version.
    """

    def __init__(self, home: Path | str | None = None) -> None:
        if home is not None and not isinstance(home, (str, os.PathLike)):
            raise ValueError(f"home must be a folder path or None, got {type(home).__name__}")
        self.home: Path = (Path(home).expanduser() if home is not None else default_home()).absolute()
        if self.home.exists() and not self.home.is_dir():
            raise ValueError(f"studio home {self.home} exists and is not a folder; choose another path")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "datasets").mkdir(exist_ok=True)
        (self.home / "runs").mkdir(exist_ok=True)
        self.path: Path = self.home / DB_FILENAME
        self._local = threading.local()
        self._open()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    # ---- connections and transactions ---------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # FULL: a committed decision survives a power cut too, not just an app crash.
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; takes the write lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the calling thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _open(self) -> None:
        try:
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            self.close()
            raise ValueError(
                f"{self.path} is not a readable SelfMix Studio database ({e}); move it away or "
                "point SELFMIX_HOME at another folder"
            ) from None
        if version > SCHEMA_VERSION:
            self.close()
            raise SchemaVersionError(
                f"{self.path} has schema version {version}, but this SelfMix Studio understands "
                f"versions up to {SCHEMA_VERSION}: it was written by a newer version. Upgrade "
                "SelfMix Studio, or point SELFMIX_HOME at another folder"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self.close()
            raise ValueError(
                f"could not switch {self.path} to WAL mode (got {mode!r}); the folder may be on a "
                "network filesystem. Point SELFMIX_HOME at a local folder"
            )
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self.path} has schema version {version} > {SCHEMA_VERSION}; upgrade SelfMix Studio"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def schema_version(self) -> int:
        return int(self._conn().execute("PRAGMA user_version").fetchone()[0])

    def journal_mode(self) -> str:
        return str(self._conn().execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # ---- existence checks ------------------------------------------------------------------
    def _require_dataset(self, conn: sqlite3.Connection, dataset_id: Any) -> None:
        _check_id(dataset_id, "dataset_id")
        if conn.execute("SELECT 1 FROM datasets WHERE id = ?", (dataset_id,)).fetchone() is None:
            raise NotFoundError(f"no dataset with id {dataset_id!r}; list_datasets() shows the ones stored")

    def _require_run(self, conn: sqlite3.Connection, run_id: Any) -> sqlite3.Row:
        _check_id(run_id, "run_id")
        row = conn.execute("SELECT id, status, control FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r}; list_runs() shows the ones stored")
        return row

    # ---- datasets -------------------------------------------------------------------------------
    def add_dataset(self, name: str, frame: pd.DataFrame, meta: Mapping[str, Any] | None = None) -> str:
        """Store a dataset's frame (rows x columns, original column names) and its metadata.

        The frame is written to <home>/datasets/<id>.parquet (its index is dropped: row
        i of the stored frame is sample i). meta is any JSON-safe dict: the text/label
        columns chosen, label_names, noise settings, source, ... Returns the dataset id.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise ValueError("frame has no rows; a dataset needs at least one row")
        bad = [c for c in frame.columns if not isinstance(c, str)]
        if bad:
            raise ValueError(f"column names must be strings, got {bad[:5]!r}; rename them first")
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))  # not list.count: 10,000 columns took 40 s
        if dup:
            raise ValueError(f"duplicate column names {dup!r}; rename them so each is unique")
        meta = {} if meta is None else meta
        if not isinstance(meta, Mapping):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
        meta_json = _dumps(dict(meta), "meta")

        dataset_id = _new_id()
        rel = f"datasets/{dataset_id}.parquet"
        try:
            with atomic_path(self.home / rel) as tmp:
                frame.reset_index(drop=True).to_parquet(tmp, index=False)
        except (TypeError, ValueError, ImportError) as e:
            raise ValueError(f"could not write the frame as Parquet ({e}); make each column one type") from None
        except Exception as e:  # pyarrow.ArrowException and friends
            if type(e).__module__.startswith("pyarrow"):
                raise ValueError(
                    f"could not write the frame as Parquet ({e}); make each column one type"
                ) from None
            raise
        try:
            with self._tx() as conn:
                conn.execute(
                    "INSERT INTO datasets (id, name, n_rows, file, meta, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (dataset_id, name.strip(), len(frame), rel, meta_json, _now()),
                )
        except BaseException:
            (self.home / rel).unlink(missing_ok=True)
            raise
        return dataset_id

    @staticmethod
    def _dataset_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["meta"] = json.loads(d["meta"])
        return d

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """{id, name, n_rows, file (relative to home), path (absolute), meta (dict), created_at}."""
        _check_id(dataset_id, "dataset_id")
        row = self._conn().execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no dataset with id {dataset_id!r}; list_datasets() shows the ones stored")
        d = self._dataset_dict(row)
        d["path"] = self.home / d["file"]
        return d

    def load_dataset_frame(self, dataset_id: str) -> pd.DataFrame:
        """The stored frame, (n_rows, n_columns), RangeIndex, same row order as added."""
        d = self.get_dataset(dataset_id)
        path = d["path"]
        if not path.exists():
            raise ValueError(
                f"dataset {dataset_id!r} ({d['name']}) has lost its file {path}; re-import the dataset"
            )
        return pd.read_parquet(path)

    def list_datasets(self) -> list[dict[str, Any]]:
        """All datasets, newest first, as get_dataset() dicts."""
        rows = self._conn().execute("SELECT * FROM datasets ORDER BY created_at DESC, rowid DESC").fetchall()
        out = []
        for r in rows:
            d = self._dataset_dict(r)
            d["path"] = self.home / d["file"]
            out.append(d)
        return out

    # ---- runs ------------------------------------------------------------------------------------
    def create_run(
        self,
        dataset_id: str,
        config: Mapping[str, Any] | Any,
        name: str | None = None,
        total_epochs: int | None = None,
    ) -> str:
        """A new run in status "created". config: a JSON-safe dict (or an object with
        to_dict(), e.g. TrainConfig). total_epochs defaults to config["epochs"].
        Returns the run id; its folder is `run_dir(run_id)`."""
        if hasattr(config, "to_dict") and not isinstance(config, Mapping):
            config = config.to_dict()
        if not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict (or have to_dict()), got {type(config).__name__}")
        config_json = _dumps(dict(config), "config")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"run name must be a string or None, got {name!r}")
        if total_epochs is None and isinstance(config.get("epochs"), (int, np.integer)):
            total_epochs = int(config["epochs"])
        if total_epochs is not None:
            total_epochs = _as_index(total_epochs, "total_epochs")
        run_id = _new_id()
        now = _now()
        with self._tx() as conn:
            self._require_dataset(conn, dataset_id)
            conn.execute(
                "INSERT INTO runs (id, dataset_id, name, config, status, total_epochs, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'created', ?, ?, ?)",
                (run_id, dataset_id, name, config_json, total_epochs, now, now),
            )
        return run_id

    _RUN_SELECT = """
        SELECT r.*, d.name AS dataset_name,
               (SELECT MAX(e.epoch) FROM epoch_reports e WHERE e.run_id = r.id) AS last_epoch
        FROM runs r JOIN datasets d ON d.id = r.dataset_id
    """

    @staticmethod
    def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["config"] = json.loads(d["config"])
        d["epochs_done"] = int(d.pop("last_epoch") or 0)
        return d

    def get_run(self, run_id: str) -> dict[str, Any]:
        """{id, dataset_id, dataset_name, name, config (dict), status, error, total_epochs,
        epochs_done (highest epoch with a saved report, 0 if none), control, control_at,
        created_at, updated_at}."""
        _check_id(run_id, "run_id")
        row = self._conn().execute(self._RUN_SELECT + " WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r}; list_runs() shows the ones stored")
        return self._run_dict(row)

    def list_runs(self, limit: int | None = 20, dataset_id: str | None = None) -> list[dict[str, Any]]:
        """Runs newest first (get_run() dicts), at most `limit` (None = all), optionally of one dataset."""
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
                raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
        sql = self._RUN_SELECT
        params: list[Any] = []
        if dataset_id is not None:
            sql += " WHERE r.dataset_id = ?"
            params.append(_check_id(dataset_id, "dataset_id"))
        sql += " ORDER BY r.created_at DESC, r.rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._run_dict(r) for r in self._conn().execute(sql, params).fetchall()]

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Set status (one of RUN_STATUSES) and error (stored as given; None clears it).
        A terminal status (stopped/finished/failed) also clears the control flag."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
        if error is not None and not isinstance(error, str):
            raise ValueError(f"error must be a string or None, got {type(error).__name__}")
        with self._tx() as conn:
            self._require_run(conn, run_id)
            if status in TERMINAL_STATUSES:
                conn.execute(
                    "UPDATE runs SET status = ?, error = ?, control = NULL, control_at = NULL, updated_at = ?"
                    " WHERE id = ?",
                    (status, error, _now(), run_id),
                )
            else:
                conn.execute(
                    "UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                    (status, error, _now(), run_id),
                )

    def set_total_epochs(self, run_id: str, total_epochs: int) -> None:
        """Change a run's planned epoch count (e.g. when extra warm-up epochs are added)."""
        total = _as_index(total_epochs, "total_epochs")
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET total_epochs = ?, updated_at = ? WHERE id = ?", (total, _now(), run_id)
            )

    def run_dir(self, run_id: str, create: bool = False) -> Path:
        """<home>/runs/<run_id>/ of a run that exists. Reading leaves the disk alone (a page that
        only looks for a run's checkpoints or provisional flags must not make folders);
        `create=True` makes the folder for a writer that does not make its own."""
        self._require_run(self._conn(), run_id)
        path = self.home / "runs" / run_id
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def mark_interrupted_runs(self) -> list[str]:
        """Close runs left active by a previous process that died: "stopping" -> "stopped",
        "running"/"paused" -> "failed" (error says so). Call once at app start, before
        any training thread starts. Returns the ids changed."""
        now = _now()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, status FROM runs WHERE status IN ('running', 'paused', 'stopping')"
            ).fetchall()
            for r in rows:
                if r["status"] == "stopping":
                    conn.execute(
                        "UPDATE runs SET status = 'stopped', control = NULL, control_at = NULL,"
                        " updated_at = ? WHERE id = ?",
                        (now, r["id"]),
                    )
                else:
                    conn.execute(
                        "UPDATE runs SET status = 'failed', error = ?, control = NULL, control_at = NULL,"
                        " updated_at = ? WHERE id = ?",
                        (
                            "interrupted: SelfMix Studio stopped while this run was active; the saved "
                            "epochs and checkpoints are kept",
                            now,
                            r["id"],
                        ),
                    )
        return [r["id"] for r in rows]

    # ---- control flags (UI -> worker) ----------------------------------------------------------
    def request_control(self, run_id: str, action: str) -> bool:
        """Record a pause / resume / stop request for the worker to act on.

        "stop" also moves a created/running/paused run to status "stopping" in the same
        transaction. Returns False (and records nothing) when the run is already
        stopped/finished/failed, True otherwise.
        """
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"action must be one of {CONTROL_ACTIONS}, got {action!r}")
        now = _now()
        with self._tx() as conn:
            row = self._require_run(conn, run_id)
            if row["status"] in TERMINAL_STATUSES:
                return False
            conn.execute(
                "UPDATE runs SET control = ?, control_at = ?, updated_at = ? WHERE id = ?",
                (action, now, now, run_id),
            )
            if action == "stop" and row["status"] in ("created", "running", "paused"):
                conn.execute("UPDATE runs SET status = 'stopping' WHERE id = ?", (run_id,))
        return True

    def get_control(self, run_id: str) -> str | None:
        """The latest requested control action ("pause", "resume", "stop") or None."""
        return self._require_run(self._conn(), run_id)["control"]

    def clear_control(self, run_id: str, action: str | None = None) -> bool:
        """Clear the control flag; with `action`, only if it still equals `action` (so a
        newer request is never lost). Returns whether it was cleared."""
        if action is not None and action not in CONTROL_ACTIONS:
            raise ValueError(f"action must be one of {CONTROL_ACTIONS} or None, got {action!r}")
        with self._tx() as conn:
            row = self._require_run(conn, run_id)
            if row["control"] is None or (action is not None and row["control"] != action):
                return False
            conn.execute("UPDATE runs SET control = NULL, control_at = NULL WHERE id = ?", (run_id,))
        return True

    # ---- epoch reports -------------------------------------------------------------------------
    def save_epoch_report(self, run_id: str, report: EpochReport) -> None:
        """Save (or replace) the report of epoch `report.epoch` of the run."""
        if not isinstance(report, EpochReport):
            raise ValueError(f"report must be an EpochReport, got {type(report).__name__}")
        epoch = _as_index(report.epoch, "report.epoch")
        if epoch < 1:
            raise ValueError(f"report.epoch is 1-based, got {epoch}")
        scalars = _dumps(report.scalars_dict(), "report scalars")
        blob = report.arrays_bytes()  # CPU work outside the write lock
        now = _now()
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT INTO epoch_reports (run_id, epoch, phase, scalars, arrays, saved_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, epoch) DO UPDATE SET phase = excluded.phase,"
                " scalars = excluded.scalars, arrays = excluded.arrays, saved_at = excluded.saved_at",
                (run_id, epoch, str(report.phase), scalars, sqlite3.Binary(blob), now),
            )
            conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now, run_id))
        if report.embeddings is not None:
            keep = {epoch} | ({int(report.recommended_epoch)} if report.recommended_epoch else set())
            self.save_embeddings(run_id, epoch, report.embeddings, keep_epochs=keep)

    # ---- sentence embeddings and their 2-D projections (schema 3) ---------------------------------
    def save_embeddings(self, run_id: str, epoch: int, embeddings: Any,
                        keep_epochs: Iterable[int] | None = None) -> None:
        """Save epoch `epoch`'s (N, H) sentence embeddings as float16 (replacing any).
        keep_epochs: when given, every other epoch's embeddings (and cached projections) of
        the run are deleted in the same transaction; `epoch` is always kept."""
        epoch = _as_index(epoch, "epoch")
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
            raise ValueError(f"embeddings must be an (N, H) array with N, H >= 1, got shape {emb.shape}")
        if not np.issubdtype(emb.dtype, np.number) or np.issubdtype(emb.dtype, np.complexfloating):
            raise ValueError(f"embeddings must be real numbers, got dtype {emb.dtype}")
        data = np.ascontiguousarray(emb, dtype="<f2").tobytes()
        keep = None if keep_epochs is None else sorted({epoch, *(_as_index(e, "keep_epochs") for e in keep_epochs)})
        now = _now()
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT INTO embeddings (run_id, epoch, n, dim, data, saved_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, epoch) DO UPDATE SET n = excluded.n, dim = excluded.dim,"
                " data = excluded.data, saved_at = excluded.saved_at",
                (run_id, epoch, int(emb.shape[0]), int(emb.shape[1]), sqlite3.Binary(data), now),
            )
            conn.execute("DELETE FROM projections WHERE run_id = ? AND epoch = ?", (run_id, epoch))
            if keep is not None:
                marks = ", ".join("?" * len(keep))
                for table in ("embeddings", "projections"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND epoch NOT IN ({marks})", (run_id, *keep))

    def embedding_epochs(self, run_id: str) -> list[int]:
        """The run's epochs whose embeddings are kept, ascending."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute("SELECT epoch FROM embeddings WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        return [int(r[0]) for r in rows]

    def load_embeddings(self, run_id: str, epoch: int) -> np.ndarray | None:
        """Epoch `epoch`'s (N, H) float16 embeddings, or None when they are not kept."""
        epoch = _as_index(epoch, "epoch")
        conn = self._conn()
        self._require_run(conn, run_id)
        row = conn.execute("SELECT n, dim, data FROM embeddings WHERE run_id = ? AND epoch = ?",
                           (run_id, epoch)).fetchone()
        if row is None:
            return None
        return np.frombuffer(bytes(row["data"]), dtype="<f2").reshape(int(row["n"]), int(row["dim"])).copy()

    def save_projection(self, run_id: str, epoch: int, method: str, coords: Any, seconds: float) -> None:
        """Cache the (N, 2) projection of epoch `epoch`'s embeddings made with `method`."""
        epoch = _as_index(epoch, "epoch")
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        xy = np.asarray(coords, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"coords must have shape (N, 2), got {xy.shape}")
        data = np.ascontiguousarray(xy, dtype="<f4").tobytes()
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT INTO projections (run_id, epoch, method, coords, seconds, saved_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, epoch, method) DO UPDATE SET coords = excluded.coords,"
                " seconds = excluded.seconds, saved_at = excluded.saved_at",
                (run_id, epoch, method, sqlite3.Binary(data), float(seconds), _now()),
            )

    def load_projection(self, run_id: str, epoch: int, method: str) -> tuple[np.ndarray, float] | None:
        """((N, 2) float32 coordinates, seconds it took) of a cached projection, or None."""
        epoch = _as_index(epoch, "epoch")
        conn = self._conn()
        self._require_run(conn, run_id)
        row = conn.execute("SELECT coords, seconds FROM projections WHERE run_id = ? AND epoch = ? AND method = ?",
                           (run_id, epoch, str(method))).fetchone()
        if row is None:
            return None
        return np.frombuffer(bytes(row["coords"]), dtype="<f4").reshape(-1, 2).copy(), float(row["seconds"])

    def load_epoch_report(self, run_id: str, epoch: int) -> EpochReport:
        """The full report (per-sample arrays (N,) included) of one saved epoch."""
        epoch = _as_index(epoch, "epoch")
        conn = self._conn()
        self._require_run(conn, run_id)
        row = conn.execute(
            "SELECT scalars, arrays FROM epoch_reports WHERE run_id = ? AND epoch = ?", (run_id, epoch)
        ).fetchone()
        if row is None:
            latest = self.latest_epoch(run_id)
            raise NotFoundError(
                f"run {run_id!r} has no report for epoch {epoch} (latest saved epoch: {latest}); "
                "list_epoch_summaries() shows the saved epochs"
            )
        return EpochReport.from_parts(json.loads(row["scalars"]), bytes(row["arrays"]))

    def list_epoch_summaries(self, run_id: str) -> list[dict[str, Any]]:
        """Each saved epoch's scalars_dict() (no per-sample arrays), by epoch ascending."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute(
            "SELECT scalars FROM epoch_reports WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
        return [json.loads(r["scalars"]) for r in rows]

    def latest_epoch(self, run_id: str) -> int | None:
        """The highest saved epoch of the run, or None before the first report."""
        conn = self._conn()
        self._require_run(conn, run_id)
        v = conn.execute("SELECT MAX(epoch) FROM epoch_reports WHERE run_id = ?", (run_id,)).fetchone()[0]
        return None if v is None else int(v)

    # ---- progress ---------------------------------------------------------------------------------
    def set_progress(self, run_id: str, **fields: Any) -> None:
        """Update the run's single progress row; fields not given keep their value.

        Fields: epoch, step, steps_in_epoch, samples_seen (int), seconds (float), phase,
        message (str); None clears one. Cheap (no fsync), meant to be called every step.
        """
        unknown = set(fields) - set(PROGRESS_FIELDS)
        if unknown:
            raise ValueError(f"unknown progress fields {sorted(unknown)}; allowed: {list(PROGRESS_FIELDS)}")
        values: dict[str, Any] = {}
        for key, value in fields.items():
            kind = PROGRESS_FIELDS[key]
            if value is None:
                values[key] = None
            elif kind is int:
                values[key] = _as_index(value, key)
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                    raise ValueError(f"{key} must be a number, got {value!r}")
                values[key] = float(value)
            else:
                if not isinstance(value, str):
                    raise ValueError(f"{key} must be a string, got {value!r}")
                values[key] = value
        values["updated_at"] = _now()
        cols = list(values)
        sql = (
            f"INSERT INTO progress (run_id, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})"
            f" ON CONFLICT (run_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in cols)}"
        )
        conn = self._conn()
        # Progress is overwritten every step and worthless after a power cut: skip the fsync.
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._tx() as conn:
                self._require_run(conn, run_id)
                conn.execute(sql, (run_id, *values.values()))
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    def get_progress(self, run_id: str) -> dict[str, Any] | None:
        """{epoch, phase, step, steps_in_epoch, samples_seen, seconds, message, updated_at}
        or None before the first set_progress()."""
        conn = self._conn()
        self._require_run(conn, run_id)
        row = conn.execute("SELECT * FROM progress WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        d = dict(row)
        d.pop("run_id")
        return d

    # ---- review decisions (append-only) ----------------------------------------------------
    def add_decision(
        self,
        run_id: str,
        sample_index: int,
        old_label: int,
        new_label: int | None,
        action: str,
        *,
        session: str | None = None,
        expected: Any = _UNCHECKED,
    ) -> int:
        """Append one decision about training sample `sample_index` (0..N-1) and commit it.

        action: "relabel" / "accept" (to new_label, a class index; "accept" = the model's
        suggestion), "keep" (new_label None or old_label; stored as old_label), "drop"
        (new_label None). session: who decides (a browser tab's token; None = nobody in
        particular, e.g. the CLI). expected: the decision id the person saw for this
        sample (None: it had no decision); when given and the sample's current decision is
        another, nothing is written and StaleDecisionError is raised. Returns the decision id.
        """
        row = _normalise_decision(sample_index, old_label, new_label, action)
        check = None if expected is _UNCHECKED else _check_expected_map({row[0]: expected})
        with self._tx() as conn:
            self._require_run(conn, run_id)
            self._check_expected(conn, run_id, check)
            cur = conn.execute(
                "INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action, session, batch)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, _now(), *row, _check_session(session), _new_batch()),
            )
            return int(cur.lastrowid)

    def add_decisions(
        self,
        run_id: str,
        rows: Iterable[Any] | pd.DataFrame,
        *,
        session: str | None = None,
        expected: Mapping[int, int | None] | None = None,
        note: str | None = None,
    ) -> int:
        """Append many decisions in ONE transaction (all or none): one review action (Undo
        takes them back together). Returns how many.

        rows: a DataFrame with columns sample_index, old_label, new_label, action; or an
        iterable of dicts with those keys; or of tuples (sample_index, old_label,
        new_label, action). Each row is validated like add_decision().
        session: as in add_decision(). expected: {sample_index: the decision id the person
        saw (None: no decision)}; if any of those samples has another decision now, nothing
        is written and StaleDecisionError names them.
        note: what the samples were (e.g. "selected on the map"), kept on every row of the
        action and shown in the log and the list of recent actions (at most 200 characters).
        """
        if note is not None:
            if not isinstance(note, str):
                raise ValueError(f"note must be a string or None, got {type(note).__name__}")
            note = note.strip()[:200] or None
        keys = ("sample_index", "old_label", "new_label", "action")
        if isinstance(rows, pd.DataFrame):
            missing = [k for k in keys if k not in rows.columns]
            if missing:
                raise ValueError(f"rows is missing columns {missing}; it needs {list(keys)}")
            items: Iterable[Any] = zip(*(rows[k].tolist() for k in keys))
        elif isinstance(rows, (str, bytes)) or not isinstance(rows, Iterable):
            raise ValueError("rows must be a DataFrame or an iterable of dicts / 4-tuples")
        else:
            items = rows
        clean: list[tuple[int, int, int | None, str]] = []
        for i, r in enumerate(items):
            try:
                if isinstance(r, Mapping):
                    missing = [k for k in keys if k not in r and k != "new_label"]
                    if missing:
                        raise ValueError(f"missing keys {missing}")
                    clean.append(
                        _normalise_decision(r["sample_index"], r["old_label"], r.get("new_label"), r["action"])
                    )
                else:
                    t = tuple(r)
                    if len(t) != 4:
                        raise ValueError(f"expected (sample_index, old_label, new_label, action), got {t!r}")
                    clean.append(_normalise_decision(*t))
            except (ValueError, TypeError) as e:
                raise ValueError(f"decision row {i}: {e}") from None
        if not clean:
            return 0
        session = _check_session(session)
        check = None if expected is None else _check_expected_map(expected)
        now, batch = _now(), _new_batch()
        with self._tx() as conn:
            self._require_run(conn, run_id)
            self._check_expected(conn, run_id, check)
            conn.executemany(
                "INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action, session, batch, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((run_id, now, *r, session, batch, note) for r in clean),
            )
        return len(clean)

    _UNDONE = "EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)"
    _LIVE = f"d.run_id = ? AND d.action != 'undo' AND NOT {_UNDONE}"

    def _current_ids(self, conn: sqlite3.Connection, run_id: str) -> dict[int, int]:
        """{sample_index: its effective decision id} (samples without one are absent)."""
        rows = conn.execute(
            f"SELECT d.sample_index, MAX(d.id) FROM decisions d WHERE {self._LIVE} GROUP BY d.sample_index",
            (run_id,),
        ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def _check_expected(self, conn: sqlite3.Connection, run_id: str, expected: Mapping[int, int | None] | None) -> None:
        """Inside a write transaction: raise StaleDecisionError if a sample's effective
        decision is not the one expected."""
        if not expected:
            return
        current = self._current_ids(conn, run_id)
        stale = [i for i, want in expected.items() if current.get(i) != want]
        if not stale:
            return
        conflicts: dict[int, dict[str, Any] | None] = {}
        for i in stale:
            r = conn.execute(
                "SELECT id, time, sample_index, old_label, new_label, action, session FROM decisions WHERE id = ?",
                (current[i],),
            ).fetchone() if i in current else None
            conflicts[i] = None if r is None else {
                "action": r["action"], "new_label": r["new_label"], "old_label": r["old_label"],
                "decision_id": int(r["id"]), "time": r["time"], "session": r["session"],
            }
        raise StaleDecisionError(conflicts)

    def undo_last(self, run_id: str) -> dict[str, Any] | None:
        """Cancel the most recent decision not yet undone by APPENDING an "undo" row.

        Repeated calls walk further back. Returns the cancelled decision as a dict (id,
        time, sample_index, old_label, new_label, action, undo_id) or None when there is
        nothing left to undo. (The app undoes whole actions, per tab: undo_action.)
        """
        with self._tx() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                "SELECT d.id, d.time, d.sample_index, d.old_label, d.new_label, d.action FROM decisions d"
                f" WHERE {self._LIVE} ORDER BY d.id DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            cur = conn.execute(
                "INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action, undoes, batch)"
                " VALUES (?, ?, ?, ?, ?, 'undo', ?, ?)",
                (run_id, _now(), row["sample_index"], row["old_label"], row["new_label"], row["id"], _new_batch()),
            )
            out = dict(row)
            out["undo_id"] = int(cur.lastrowid)
            return out

    def undo_action(
        self, run_id: str, *, session: str | None = None, decision_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Undo one review ACTION -- the decisions one add_decision(s) call wrote (a bulk
        accept is one action) that are not undone yet -- by appending "undo" rows, in one
        transaction.

        Which action: the one holding decision `decision_id` when given; else the newest
        one written by `session` (session None: by anyone). The undo rows record
        `session`. Decisions from before schema 2 (no batch) count as one action when they
        share their timestamp. Returns the undone decisions, oldest first, as dicts (id,
        time, sample_index, old_label, new_label, action, session, undo_id); [] when there
        is nothing (left) to undo.
        """
        session = _check_session(session)
        cols = "d.id, d.time, d.sample_index, d.old_label, d.new_label, d.action, d.session, d.batch"
        with self._tx() as conn:
            self._require_run(conn, run_id)
            if decision_id is not None:
                last = conn.execute(
                    f"SELECT {cols} FROM decisions d WHERE d.id = ? AND {self._LIVE}",
                    (_as_index(decision_id, "decision_id"), run_id),
                ).fetchone()
            elif session is not None:
                last = conn.execute(
                    f"SELECT {cols} FROM decisions d WHERE {self._LIVE} AND d.session = ? ORDER BY d.id DESC LIMIT 1",
                    (run_id, session),
                ).fetchone()
            else:
                last = conn.execute(
                    f"SELECT {cols} FROM decisions d WHERE {self._LIVE} ORDER BY d.id DESC LIMIT 1", (run_id,)
                ).fetchone()
            if last is None:
                return []
            if last["batch"] is not None:
                group = conn.execute(
                    f"SELECT {cols} FROM decisions d WHERE {self._LIVE} AND d.batch = ? ORDER BY d.id",
                    (run_id, last["batch"]),
                ).fetchall()
            else:
                group = conn.execute(
                    f"SELECT {cols} FROM decisions d WHERE {self._LIVE} AND d.batch IS NULL AND d.time = ?"
                    " ORDER BY d.id",
                    (run_id, last["time"]),
                ).fetchall()
            now, batch = _now(), _new_batch()
            out = []
            for r in group:
                cur = conn.execute(
                    "INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action, undoes,"
                    " session, batch) VALUES (?, ?, ?, ?, ?, 'undo', ?, ?, ?)",
                    (run_id, now, r["sample_index"], r["old_label"], r["new_label"], r["id"], session, batch),
                )
                d = dict(r)
                d.pop("batch")
                d["undo_id"] = int(cur.lastrowid)
                out.append(d)
            return out

    def live_actions(self, run_id: str, *, session: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """The newest review actions not undone yet (of `session` only, when given), newest
        first, at most `limit`: [{"id": the action's newest decision id (pass it to
        undo_action), "time", "session", "action" (the decisions' action, or "mixed"),
        "n" (decisions), "sample_index" (the first sample), "note" (the action's note or
        None)}]."""
        conn = self._conn()
        self._require_run(conn, run_id)
        where = self._LIVE + (" AND d.session = ?" if session is not None else "")
        params: tuple[Any, ...] = (run_id, session) if session is not None else (run_id,)
        rows = conn.execute(
            "SELECT MAX(d.id) AS id, MAX(d.time) AS time, MAX(d.session) AS session, MIN(d.action) AS a0,"
            " MAX(d.action) AS a1, COUNT(*) AS n, MIN(d.sample_index) AS sample_index, MAX(d.note) AS note"
            " FROM decisions d"
            f" WHERE {where} GROUP BY COALESCE(d.batch, 'time:' || d.time) ORDER BY MAX(d.id) DESC LIMIT ?",
            (*params, max(int(limit), 0)),
        ).fetchall()
        return [
            {"id": int(r["id"]), "time": r["time"], "session": r["session"],
             "action": r["a0"] if r["a0"] == r["a1"] else "mixed", "n": int(r["n"]),
             "sample_index": int(r["sample_index"]), "note": r["note"]}
            for r in rows
        ]

    def decision_log(self, run_id: str) -> pd.DataFrame:
        """The whole log in order: columns id, time, sample_index, old_label, new_label,
        action, undoes, session (new_label / undoes are nullable Int64; undo rows repeat
        the undone decision's sample_index and labels; session: the tab that wrote the
        row, None for the CLI and for rows from before schema 2; note: the action's note,
        e.g. "selected on the map", None without one)."""
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute(
            "SELECT id, time, sample_index, old_label, new_label, action, undoes, session, note FROM decisions"
            " WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        cols = ["id", "time", "sample_index", "old_label", "new_label", "action", "undoes", "session", "note"]
        df = pd.DataFrame([tuple(r) for r in rows], columns=cols)
        df = df.astype(
            {"id": "int64", "sample_index": "int64", "old_label": "Int64", "new_label": "Int64",
             "undoes": "Int64", "time": str, "action": str, "session": object, "note": object}
        )
        return df

    def current_decisions(self, run_id: str) -> dict[int, dict[str, Any]]:
        """The effective decision per sample after replaying the log: for each
        sample_index, its latest decision that has not been undone.

        Returns {sample_index: {"action", "new_label", "old_label", "decision_id", "time",
        "session"}}; samples without an effective decision are absent. new_label is the
        final label index for relabel/accept/keep and None for drop. decision_id is what a
        later write passes as `expected` to make sure it replaces this very decision.
        """
        conn = self._conn()
        self._require_run(conn, run_id)
        rows = conn.execute(
            "SELECT d.id, d.time, d.sample_index, d.old_label, d.new_label, d.action, d.session FROM decisions d"
            " WHERE d.id IN ("
            "   SELECT MAX(d.id) FROM decisions d"
            f"  WHERE {self._LIVE}"
            "   GROUP BY d.sample_index)"
            " ORDER BY d.sample_index",
            (run_id,),
        ).fetchall()
        return {
            int(r["sample_index"]): {
                "action": r["action"],
                "new_label": r["new_label"],
                "old_label": r["old_label"],
                "decision_id": int(r["id"]),
                "time": r["time"],
                "session": r["session"],
            }
            for r in rows
        }
