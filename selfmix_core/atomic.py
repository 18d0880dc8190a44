"""Atomic file writes: a file is either its old content or its complete new content.

A writer gets a temporary path in the SAME folder as the target (so the final
`os.replace` is a rename on one filesystem, atomic on POSIX and Windows). On success
the temp file is fsync'ed and renamed onto the target and the folder entry is
fsync'ed; on any error the temp file is removed and the target is left untouched.
Used for checkpoints, dataset files and exports.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_folder"]


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:  # a writer that made its file read-only
        fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open folders)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_folder(folder: str | os.PathLike[str], recursive: bool = True) -> None:
    """Flush every file in `folder` (recursively) and the folder entries to disk;
    with recursive=False only the folder's own entries (after a rename inside it).

    For a folder built under a temporary name and then renamed into place (a
    checkpoint): call it before the rename, so a power loss cannot leave the new name
    pointing at files whose data never reached the disk."""
    root = Path(folder)
    if not recursive:
        _fsync_dir(root)
        return
    for path in sorted(root.rglob("*"), reverse=True):  # files before the folders that hold them
        if path.is_file() and not path.is_symlink():
            _fsync_file(path)
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(root)


def _new_temp(path: Path) -> Path:
    # Hidden, same folder, and ending in the target's own suffix: writers such as
    # np.save / np.savez append their suffix when it is missing, which would make
    # them write somewhere else.
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OSError(f"could not create a temporary file next to {path}")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces `path` when the block succeeds.

    The temp file already exists (empty) when yielded; write it completely, by name.
    The target's folder is created if needed. On an exception inside the block the
    temp file is deleted, `path` keeps its old content (or stays absent) and the
    exception propagates.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise ValueError(f"path must name a file, got {str(path)!r}")
    if target.is_dir():
        raise ValueError(f"{target} is a folder; give the path of a file to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(target)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically. Returns the target path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}; use atomic_write_text for str")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (UTF-8 by default, newlines as given). Returns the path."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}; use atomic_write_bytes for bytes")
    return atomic_write_bytes(path, text.encode(encoding))
