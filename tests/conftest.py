"""Shared fixtures: a tiny random-init BERT (tokenizer from the bundled MiniLM) and tiny data.

Tests never touch a model hub: HF_HUB_OFFLINE is set before transformers is imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models are slower with more threads (sync overhead), badly so on a busy 2-core
# machine; child processes inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared"

WORDS = {
    0: ["apple", "banana", "cherry", "grape", "lemon", "mango"],
    1: ["car", "truck", "bus", "train", "plane", "boat"],
    2: ["red", "blue", "green", "yellow", "purple", "orange"],
}
NAMES = ["fruit", "vehicle", "colour"]


def make_frame(n: int = 60, seed: int = 0, k: int = 3) -> pd.DataFrame:
    """n short texts whose class is given by the words they use; labels are class names."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        y = i % k
        words = rng.choice(WORDS[y], size=4)
        rows.append({"text": "the " + " ".join(words), "label": NAMES[y]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def tokenizer():
    from selfmix_core.model import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture
def tiny_model_factory(tokenizer):
    """Returns f(num_labels, seed=0) -> TextClassifier over a 2-layer, 32-wide random BERT."""
    from transformers import BertModel

    from selfmix_core.config import ModelConfig
    from selfmix_core.model import TextClassifier
    from tests.tiny_model import tiny_bert_config

    def make(num_labels: int = 3, seed: int = 0, pooling: str = "cls"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = BertModel(tiny_bert_config(tokenizer.vocab_size))
            return TextClassifier(encoder, num_labels, ModelConfig(max_length=32, pooling=pooling))

    return make


@pytest.fixture
def tiny_dataset():
    from selfmix_core.data import dataset_from_frame

    return dataset_from_frame(make_frame(60), source="tiny")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A folder holding the tiny random-init BERT and the bundled tokenizer, loadable by path."""
    from tests.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A Store in a fresh studio home, which SELFMIX_HOME points to (so the app and the
    worker use it too). Test modules with their own `store` fixture override this one."""
    from selfmix_core.store import Store

    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "home"))
    s = Store(tmp_path / "home")
    yield s
    s.close()
