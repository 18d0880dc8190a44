"""model.resolve_pooling: "auto" reads how a sentence-transformers encoder was trained."""

import json

import torch

from selfmix_core.config import ModelConfig
from selfmix_core.model import resolve_pooling


def test_auto_pooling_follows_the_encoders_training(tmp_path, tiny_model_dir):
    assert resolve_pooling(ModelConfig(pooling="cls")) == "cls"
    assert resolve_pooling(ModelConfig(pooling="mean")) == "mean"
    assert resolve_pooling(ModelConfig(model=None, pooling="auto")) == "mean"  # the bundled MiniLM: mean-trained
    assert resolve_pooling(ModelConfig(model=str(tiny_model_dir), pooling="auto")) == "cls"  # plain BERT folder
    st = tmp_path / "st"
    (st / "1_Pooling").mkdir(parents=True)
    (st / "config.json").write_text("{}")
    (st / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                              "pooling_mode_mean_tokens": False}))
    assert resolve_pooling(ModelConfig(model=str(st), pooling="auto")) == "cls"
    assert resolve_pooling(ModelConfig(model="some-org/some-model", pooling="auto")) == "cls"  # no local folder


def test_mean_pooling_ignores_padding(tiny_model_factory):
    model = tiny_model_factory(3, pooling="mean").eval()
    ids = torch.tensor([[101, 2000, 2001, 102, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        padded = model.embed(ids, mask)
        short = model.embed(ids[:, :4], mask[:, :4])
    torch.testing.assert_close(padded, short, rtol=1e-5, atol=1e-5)
