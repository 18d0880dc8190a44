"""Issue #14: does a config saved before SpeedConfig still run the engine bit for bit?

    python bench/speed_bitcheck.py /path/to/a/checkout   # prints one SHA-256

Trains the tests' tiny BERT on 80 tiny texts (16 labels flipped) for 4 epochs (1 warm-up,
3 SelfMix) with a test set, from a TrainConfig dict without the "speed" key (as saved
before it existed), and hashes every epoch's per-sample losses, clean probabilities,
predicted probabilities, loss components and test accuracy. Run it from a checkout before
issue #14 and from one after: the same hash means old runs reproduce bit for bit (one
machine, one thread). Measured when written: main at e5295e7 and branch speed gave the same.
"""
import sys, hashlib, os
root = sys.argv[1]; sys.path.insert(0, root)
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np, torch
torch.set_num_threads(1)
from selfmix_core.config import TrainConfig, ModelConfig
from selfmix_core.data import dataset_from_frame
from selfmix_core.model import load_tokenizer, TextClassifier
from tests.conftest import make_frame
from tests.tiny_model import tiny_bert_config
from transformers import BertModel
from selfmix_core.trainer import SelfMixTrainer
tok = load_tokenizer(None)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    model = TextClassifier(BertModel(tiny_bert_config(tok.vocab_size)), 3, ModelConfig(max_length=32))
train = dataset_from_frame(make_frame(80, seed=0), source="t")
rng = np.random.default_rng(0); labels = train.labels.copy(); f = rng.choice(80, 16, replace=False); labels[f] = (labels[f] + 1) % 3
train = train.with_labels(labels, train.labels.copy())
test = dataset_from_frame(make_frame(30, seed=1), source="s", label_names=train.label_names)
d = TrainConfig(epochs=4, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", model=ModelConfig(max_length=32)).to_dict()
d.pop("speed", None)  # a config saved before SpeedConfig existed
cfg = TrainConfig.from_dict(d)
h = hashlib.sha256()
for r in SelfMixTrainer(cfg, train, test, model=model, tokenizer=tok).run():
    for a in (r.loss, r.clean_prob, r.predicted_prob):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((r.losses, r.test_accuracy)).encode())
print(h.hexdigest())
