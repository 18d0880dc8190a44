"""Reading uploaded tables without freezing the page.

A small file is parsed inline. A big one (over SYNC_PARSE_BYTES) is parsed by a
background thread; the page shows a spinner and polls `parse_job(...).done()` from a
fragment, so the app stays responsive (other tabs and pages keep working) while a
few hundred MB of CSV are read. No st.* here.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from selfmix_core.data import read_table

SYNC_PARSE_BYTES = 8 * 1024**2

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfmix-parse")
_JOBS: dict[str, Future] = {}
_LOCK = threading.Lock()


def _read(data: bytes, name: str) -> pd.DataFrame:
    buf = io.BytesIO(data)
    buf.name = name
    return read_table(buf)


def parse_inline(data: bytes, name: str) -> pd.DataFrame:
    """read_table on uploaded bytes (raises DataValidationError / ValueError)."""
    return _read(data, name)


def parse_job(key: str, data: bytes | None, name: str) -> Future:
    """The background parse of upload `key` (started on first call; `data` may be None
    once started). The future's result() is the frame or raises the parse error."""
    with _LOCK:
        fut = _JOBS.get(key)
        if fut is None:
            if data is None:
                raise KeyError(f"no parse job for {key!r}")
            fut = _EXECUTOR.submit(_read, data, name)
            _JOBS[key] = fut
            while len(_JOBS) > 4:  # forget the oldest finished jobs
                old = next((k for k, f in _JOBS.items() if f.done() and k != key), None)
                if old is None:
                    break
                del _JOBS[old]
        return fut


def forget(key: str) -> None:
    with _LOCK:
        _JOBS.pop(key, None)
