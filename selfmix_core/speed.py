"""What makes an epoch fast (SpeedConfig): the helpers the trainer calls.

  * `cpu_supports_bf16()`: does this CPU compute bf16 natively (AVX512-BF16 or AMX)?
    `use_bf16(device, bf16_cpu)` decides the autocast for a run from it.
  * `TokenCache`: the token ids of a list of texts, tokenised once; `collate` pads a
    batch exactly as the tokenizer's own `padding=True` would.
  * `grouped_batches`: an epoch's shuffled order cut into batches of similar token
    length within shuffled chunks (less padding, still random, every sample once).
  * `stratified_sample`: the fixed test sample evaluated during training.
  * `physical_cores()` / `configure_threads()`: torch's thread count.
  * `save_provisional` / `load_provisional`: the app's worker keeps the newest
    provisional flags (ProvisionalFlags) in the run's folder for the Train page.

No Streamlit, no global RNG: every random choice takes an explicit generator.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

@dataclass
class ProvisionalFlags:
    """A rough ranking from part of the first warm-up epoch (SpeedConfig.provisional_every).

    epoch / fraction: the epoch and the share of its steps done; samples_seen: trained so far.
    index: (M,) the training samples scored (those trained so far); loss, clean_prob,
    predicted_label: (M,) per-sample CE (dropout off), the GMM posterior of the low-loss
    component fitted on them (lower = more likely mislabeled) and the argmax.
    auroc: detection AUROC against the true labels over the M samples (None without them).
    seconds: since the epoch started (provisional scoring included).
    """

    epoch: int
    fraction: float
    samples_seen: int
    index: np.ndarray
    loss: np.ndarray
    clean_prob: np.ndarray
    predicted_label: np.ndarray
    auroc: float | None
    seconds: float
    provisional: bool = True


PROVISIONAL_FILE = "provisional.npz"  # in a run's folder: the newest provisional flags


def save_provisional(path: Path, flags: ProvisionalFlags) -> None:
    """Write `flags` to `path` (.npz) atomically: a reader sees the old file or the new one."""
    from .atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, epoch=flags.epoch, fraction=flags.fraction, samples_seen=flags.samples_seen,
                 index=np.asarray(flags.index, dtype=np.int64), loss=np.asarray(flags.loss, dtype=np.float32),
                 clean_prob=np.asarray(flags.clean_prob, dtype=np.float32),
                 predicted_label=np.asarray(flags.predicted_label, dtype=np.int64),
                 auroc=np.nan if flags.auroc is None else flags.auroc, seconds=flags.seconds)


def load_provisional(path: Path) -> ProvisionalFlags | None:
    """The flags save_provisional wrote, or None when there are none (or the file is
    unreadable: provisional flags are a preview, never worth an error)."""
    try:
        with np.load(Path(path)) as z:
            auroc = float(z["auroc"])
            return ProvisionalFlags(
                epoch=int(z["epoch"]), fraction=float(z["fraction"]), samples_seen=int(z["samples_seen"]),
                index=z["index"], loss=z["loss"], clean_prob=z["clean_prob"], predicted_label=z["predicted_label"],
                auroc=None if np.isnan(auroc) else auroc, seconds=float(z["seconds"]))
    except (OSError, KeyError, ValueError, EOFError):
        return None


def provisional_steps(steps: int, every: float) -> set[int]:
    """The step numbers (1..steps-1) after which provisional flags are made: every `every`
    of the epoch's steps, rounded up, the last step excluded (the epoch's report follows)."""
    if every <= 0 or steps < 2:
        return set()
    points, k = set(), 1
    while k * every < 1.0 - 1e-9:
        points.add(max(1, int(np.ceil(k * every * steps))))
        k += 1
    return {p for p in points if p < steps}


# Above this many tokens in all (4 bytes each) the texts are tokenised per batch instead.
MAX_CACHED_TOKENS = 50_000_000
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (the AVX512-BF16 or AMX-BF16 flag
    in /proc/cpuinfo) and torch's oneDNN can use it. False elsewhere (no /proc/cpuinfo,
    e.g. macOS; older CPUs, where bf16 would be emulated and slower than fp32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not any(f in flags for f in _BF16_FLAGS):
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(device: torch.device, bf16_cpu: bool) -> bool:
    """Whether the trainer runs its forward passes under bf16 autocast on `device`:
    always on CUDA (as the engine always did), on a CPU only when asked for and
    supported (`cpu_supports_bf16`), never on other devices (MPS)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(bf16_cpu) and cpu_supports_bf16()


def physical_cores() -> int:
    """Physical cores this process may run on: the CPUs in its affinity mask divided by
    the hardware threads per core (from /proc/cpuinfo's siblings / cpu cores), at least 1."""
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    per_core = 1
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        siblings = next(int(x.split(":")[1]) for x in info if x.startswith("siblings"))
        cores = next(int(x.split(":")[1]) for x in info if x.startswith("cpu cores"))
        per_core = max(1, siblings // max(cores, 1))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return max(1, logical // per_core)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (default: `physical_cores()`, unless
    OMP_NUM_THREADS is set, which then stands); returns the count in force.
    Hyper-threads share a core's matrix units, so more threads than cores only adds
    contention."""
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = physical_cores()
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    torch.set_num_threads(int(threads))
    return int(threads)


class TokenCache:
    """Token ids of N texts, tokenised once (truncated to max_length, no padding).

    lengths: (N,) int64 tokens per text. `collate(idx)` -> {"input_ids": (B, L),
    "attention_mask": (B, L)} int64 tensors, L = the longest text of the batch, padded on
    the tokenizer's padding side with its pad id: the same tensors as
    tokenizer(texts, padding=True, truncation=True, max_length=max_length).
    """

    def __init__(self, tokenizer, texts: Sequence[str], max_length: int, chunk: int = 4096):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.left = getattr(tokenizer, "padding_side", "right") == "left"
        pieces: list[np.ndarray] = []
        lengths: list[int] = []
        for s in range(0, len(texts), chunk):
            enc = tokenizer(list(texts[s : s + chunk]), truncation=True, max_length=max_length, padding=False)
            for ids in enc["input_ids"]:
                pieces.append(np.asarray(ids, dtype=np.int32))
                lengths.append(len(ids))
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.lengths)

    def collate(self, idx: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("collate needs at least one index")
        if idx.min() < 0 or idx.max() >= len(self.lengths):
            raise ValueError(f"indices must be in 0..{len(self.lengths) - 1}")
        lens = self.lengths[idx]
        width = int(lens.max())
        ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, (i, n) in enumerate(zip(idx, lens)):
            start = width - n if self.left else 0
            ids[row, start : start + n] = self.flat[self.offsets[i] : self.offsets[i] + n]
            mask[row, start : start + n] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


def token_cache_fits(n_texts: int, max_length: int) -> bool:
    """Whether N texts of at most max_length tokens fit under MAX_CACHED_TOKENS."""
    return n_texts * max_length <= MAX_CACHED_TOKENS


def grouped_batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, chunk_batches: int,
                    gen: torch.Generator) -> list[np.ndarray]:
    """Cut an epoch's (already shuffled) order into batches of similar length.

    order: (M,) sample indices in their shuffled order; lengths: (N,) tokens per sample,
    indexed by those indices. The order is cut into chunks of batch_size * chunk_batches
    consecutive samples; each chunk is sorted by length (stable), cut into batches of
    batch_size, and its batches are shuffled with `gen`. Chunk by chunk, so the epoch
    stays random at the scale of a chunk. Every index of `order` lands in exactly one
    batch; only the last batch of the epoch may be short, and it stays last.
    Returns a list of (B,) index arrays.
    """
    order = np.asarray(order, dtype=np.int64)
    if batch_size < 1 or chunk_batches < 1:
        raise ValueError(f"batch_size and chunk_batches must be >= 1, got {batch_size} and {chunk_batches}")
    lengths = np.asarray(lengths)
    size = batch_size * chunk_batches
    out: list[np.ndarray] = []
    for s in range(0, len(order), size):
        chunk = order[s : s + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        short = batches.pop() if len(batches[-1]) < batch_size else None
        perm = torch.randperm(len(batches), generator=gen).tolist() if batches else []
        out += [batches[i] for i in perm]
        if short is not None:
            out.append(short)
    return out


def grouped_order(order: np.ndarray, lengths: np.ndarray, batch_size: int, chunk_batches: int,
                  gen: torch.Generator) -> np.ndarray:
    """`grouped_batches` concatenated: an (M,) order whose consecutive runs of
    batch_size samples have similar lengths (the SelfMix epoch's X and U streams)."""
    batches = grouped_batches(order, lengths, batch_size, chunk_batches, gen)
    return np.concatenate(batches) if batches else np.asarray(order, dtype=np.int64)[:0]


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(min(n, N),) sorted indices of a sample of the (N,) labels, stratified: each class
    gets its share of n (largest remainders first), drawn with `rng`. All N when n >= N."""
    labels = np.asarray(labels, dtype=np.int64)
    if n < 1:
        raise ValueError(f"the sample size must be >= 1, got {n}")
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    take = np.floor(exact).astype(np.int64)
    for j in np.argsort(-(exact - take), kind="stable")[: n - int(take.sum())]:
        take[j] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=int(t), replace=False) for c, t in zip(classes, take) if t]
    return np.sort(np.concatenate(picked))
