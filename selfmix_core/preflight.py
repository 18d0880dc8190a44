"""Before a run starts: a stratified sample for a quick first look, a max length
suggested from the data's token lengths, and a rough time estimate from a few timed
training steps. No Streamlit; the Train page shows them next to its settings.

    idx = stratified_sample(labels, 2000, seed=0)        # sorted row indices
    suggest_max_length(texts, tokenizer)                  # 95th percentile, multiple of 8
    step = time_training_steps(config, texts, labels, k)  # seconds per sample (cached)
    estimate_run_seconds(step, n, config)                 # {"epoch_s", "run_s", ...}
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "SELFMIX_EPOCH_FACTOR",
    "estimate_run_seconds",
    "stratified_sample",
    "suggest_max_length",
    "time_training_steps",
    "token_lengths",
]

# A SelfMix epoch costs more than a warm-up (cross-entropy) epoch of the same samples.
# The trainer's loop makes one pass over X in half-batches (|X|/(B/2) steps; X is ~80% of
# the data, so ~1.6 N/B steps), and each step trains on B/2 of X plus U twice (R-Drop:
# 1.5 B samples forward+backward) after an eval forward pass on U (~1/6 B): about
# 1.6 * 1.67 = 2.7 warm-up epochs. A rough factor for the estimate.
SELFMIX_EPOCH_FACTOR = 2.7
# The scoring pass after each epoch: one forward pass (no backward) over every sample,
# about a third of a training step per sample.
SCORE_FACTOR = 1.0 / 3.0

_STEP_CACHE: dict[tuple, float] = {}


def stratified_sample(labels: Sequence[int] | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a sample of `n` rows with the classes in their proportions.

    Each class gets round(n * share) rows by largest remainder (the counts sum to n),
    and at least one row while n allows one per class; within a class the rows are
    drawn at random (seed). n >= len(labels) returns every row. Raises ValueError for
    n < 1."""
    labels = np.asarray(labels)
    total = len(labels)
    if int(n) < 1:
        raise ValueError(f"the sample needs at least 1 text, got {n}")
    if int(n) >= total:
        return np.arange(total, dtype=np.int64)
    n = int(n)
    classes, counts = np.unique(labels, return_counts=True)
    want = counts / total * n
    take = np.floor(want).astype(np.int64)
    if n >= len(classes):
        take = np.maximum(take, 1)
    take = np.minimum(take, counts)
    # hand out / take back the rest by the largest (smallest) remainder
    rem = want - np.floor(want)
    while take.sum() < n:
        room = take < counts
        i = int(np.argmax(np.where(room, rem, -np.inf)))
        take[i] += 1
        rem[i] = -1.0
    while take.sum() > n:
        can = take > (1 if n >= len(classes) else 0)
        i = int(np.argmax(np.where(can, take - want, -np.inf)))
        take[i] -= 1
    rng = np.random.default_rng(seed)
    out = [rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(out)).astype(np.int64)


def token_lengths(texts: Sequence[str], tokenizer: Any, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Token counts (special tokens included, no truncation) of up to `sample` texts
    drawn at random (all of them when there are fewer)."""
    texts = list(texts)
    if len(texts) > sample:
        idx = np.random.default_rng(seed).choice(len(texts), size=sample, replace=False)
        texts = [texts[i] for i in idx]
    if not texts:
        return np.zeros(0, dtype=np.int64)
    enc = tokenizer([str(t) for t in texts], add_special_tokens=True, truncation=False)
    return np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)


def suggest_max_length(texts: Sequence[str], tokenizer: Any, q: float = 95.0, cap: int | None = None,
                       sample: int = 2000, seed: int = 0) -> int:
    """The q-th percentile of the texts' token lengths rounded up to a multiple of 8 (at
    least 8), at most `cap` (the model's position limit) when given: longer texts are
    truncated, the rest pay for no padding."""
    lengths = token_lengths(texts, tokenizer, sample=sample, seed=seed)
    if lengths.size == 0:
        return 8 if cap is None else min(8, int(cap))
    value = max(8, int(math.ceil(float(np.percentile(lengths, q)) / 8.0)) * 8)
    return value if cap is None else min(value, int(cap))


def time_training_steps(config: Any, texts: Sequence[str], labels: Sequence[int], num_labels: int,
                        steps: int = 3, seed: int = 0, use_cache: bool = True, bundle: Any = None) -> float:
    """Seconds per training sample, measured: the median of `steps` forward + backward +
    optimiser steps of the configured model (config: a TrainConfig) on random batches of
    the data, padded as the trainer pads them (after two untimed warm-up steps). Cached per (model, max_length, device, batch size).
    bundle: a ready model.Bundle (tests); otherwise the model is loaded."""
    import torch

    from .model import build_classifier
    from .trainer import resolve_device

    device = resolve_device(config.device)
    batch = max(1, int(config.batch_size))
    key = (config.model.model, int(config.model.max_length), str(device), batch)
    if use_cache and key in _STEP_CACHE:
        return _STEP_CACHE[key]
    bundle = bundle if bundle is not None else build_classifier(int(num_labels), config.model)
    model, tok = bundle.model.to(device), bundle.tokenizer
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-12)  # the cost of a step, not its effect
    rng = np.random.default_rng(seed)
    texts, labels = list(texts), np.asarray(labels, dtype=np.int64)
    amp = device.type == "cuda"

    def one_step() -> None:
        idx = rng.choice(len(texts), size=min(batch, len(texts)), replace=len(texts) < batch)
        enc = tok([str(texts[i]) for i in idx], padding=True, truncation=True,  # as the trainer pads
                  max_length=int(config.model.max_length), return_tensors="pt")
        y = torch.as_tensor(labels[idx] % int(num_labels), device=device)
        with torch.autocast(device_type=device.type, enabled=amp):
            logits = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up: allocations, kernels, the first (slow) autograd passes
        one_step()
    times = []
    for _ in range(max(1, int(steps))):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        one_step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    # the median step: one step slowed by another process does not skew the estimate
    per_sample = float(np.median(times)) / min(batch, max(1, len(texts)))
    _STEP_CACHE[key] = per_sample
    return per_sample


def estimate_run_seconds(per_sample_s: float, n: int, epochs: int, warmup_epochs: int,
                         method: str = "selfmix") -> dict[str, float]:
    """Rough durations from the seconds per training sample: {"warmup_epoch_s",
    "selfmix_epoch_s", "epoch_s" (the longest kind of epoch the run has), "run_s"}.
    An epoch trains on the n samples once and then scores them all (SCORE_FACTOR of a
    step each); a SelfMix epoch costs SELFMIX_EPOCH_FACTOR times a warm-up one."""
    if per_sample_s < 0 or n < 0:
        raise ValueError("per_sample_s and n must not be negative")
    epochs, warm = max(0, int(epochs)), max(0, int(warmup_epochs))
    warm = min(warm, epochs)
    base = per_sample_s * n
    warm_s = base * (1.0 + SCORE_FACTOR)
    mix_s = base * (SELFMIX_EPOCH_FACTOR + SCORE_FACTOR) if method == "selfmix" else warm_s
    n_mix = epochs - warm
    run_s = warm * warm_s + n_mix * mix_s
    return {"warmup_epoch_s": warm_s, "selfmix_epoch_s": mix_s,
            "epoch_s": mix_s if n_mix else warm_s, "run_s": run_s}
