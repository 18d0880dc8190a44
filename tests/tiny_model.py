"""A tiny random-init BERT saved as a model FOLDER, so the app loads it by path like any
real model (Train page "Model" field, or $SELFMIX_DEFAULT_MODEL), plus tiny data helpers
for the UI tests. Building the folder takes well under a second; it is made once per
test process."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import threading
from pathlib import Path

import pandas as pd

_LOCK = threading.Lock()
_BUILT: dict[str, Path] = {}


def tiny_bert_config(vocab_size: int, dropout: float = 0.1):
    """The test encoder: a 2-layer, 32-wide BERT (about 1M parameters, mostly embeddings)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512, hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout)


def build_tiny_model_dir(folder: str | os.PathLike, dropout: float = 0.1) -> Path:
    """Write a 2-layer, 32-wide random BERT (config.json + model.safetensors) and the
    bundled MiniLM tokenizer into `folder`. Returns the folder. dropout: the encoder's
    hidden and attention dropout (0 makes training deterministic given the data order)."""
    import torch
    from transformers import BertModel

    from selfmix_core.model import load_tokenizer

    folder = Path(folder)
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(None)
    cfg = tiny_bert_config(tokenizer.vocab_size, dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BertModel(cfg)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model_dir(base: str | os.PathLike) -> Path:
    """build_tiny_model_dir(base / "tiny-bert"), built once per process and base."""
    key = str(Path(base).resolve())
    with _LOCK:
        if key not in _BUILT:
            _BUILT[key] = build_tiny_model_dir(Path(base) / "tiny-bert")
        return _BUILT[key]


WORDS = {
    "fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    "vehicle": ["car", "truck", "bus", "train", "plane", "boat"],
    "colour": ["red", "blue", "green", "yellow", "purple", "orange"],
}


def tiny_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """n short texts labeled by the words they use (3 classes, balanced); column names
    text / label."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = list(WORDS)
    rows = []
    for i in range(n):
        label = names[i % len(names)]
        rows.append({"text": "the " + " ".join(rng.choice(WORDS[label], size=4)), "label": label})
    return pd.DataFrame(rows)


def tiny_config(model_dir: str | os.PathLike, epochs: int = 2, warmup: int = 1, batch_size: int = 8):
    """A TrainConfig for a fast run on the tiny model (max_length 16, CPU)."""
    from selfmix_core.config import ModelConfig, TrainConfig

    return TrainConfig(epochs=epochs, warmup_epochs=warmup, batch_size=batch_size, score_batch_size=64,
                       device="cpu", model=ModelConfig(model=str(model_dir), max_length=16))
