"""Data-parallel training (selfmix_core/distributed.py) with two ranks on the CPU (gloo):

* two ranks end with the same weights and the same per-epoch reports, covering all N
  samples; rank 0 alone writes the checkpoint, from which a 2-rank run resumes;
* with dropout off, 2 ranks take the same optimisation steps as 1 process (each rank
  half of every batch, gradients summed): same weights, losses and per-sample scores;
* `torchrun -m selfmix_core train` trains, and rank 0 alone prints and writes.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed
import torch.multiprocessing as mp

from tests.tiny_model import build_tiny_model_dir, tiny_frame

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(model_dir: str, method: str, epochs: int, head_dropout: float):
    from selfmix_core.config import ModelConfig, SpeedConfig, TrainConfig

    # fp32, so that the 1e-5 comparison with one process tests the distribution, not bf16's
    # rounding of other batch shapes; the other speed options stay on.
    return TrainConfig(method=method, epochs=epochs, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", seed=3,
                       score_batch_size=16, model=ModelConfig(model=model_dir, max_length=16,
                                                              head_dropout=head_dropout),
                       speed=SpeedConfig(bf16_cpu=False))


def _data():
    from selfmix_core.data import dataset_from_frame

    train = dataset_from_frame(tiny_frame(42, seed=1), source="train")
    rng = np.random.default_rng(0)
    labels = train.labels.copy()
    flip = rng.choice(len(train), size=8, replace=False)
    labels[flip] = (labels[flip] + 1) % train.num_classes
    test = dataset_from_frame(tiny_frame(21, seed=2), source="test", label_names=train.label_names)
    return train.with_labels(labels, train.labels.copy()), test


def _train(rank: int, world: int, out: str, model_dir: str, method: str, epochs: int, head_dropout: float,
           resume: bool = False) -> None:
    """Train in this process as `rank` of `world` and save what it ended with."""
    from selfmix_core.distributed import DistContext
    from selfmix_core.trainer import SelfMixTrainer

    torch.set_num_threads(1)
    ctx = DistContext()
    if world > 1:
        # bounded: a rank waiting on a collective the other never joins fails, not hangs
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world,
                                             timeout=datetime.timedelta(seconds=120))
        ctx = DistContext(rank=rank, world_size=world)
    try:
        train, test = _data()
        trainer = SelfMixTrainer(_config(model_dir, method, epochs, head_dropout), train, test,
                                 checkpoint_dir=Path(out) / "ckpt", resume=resume, dist=ctx)
        reports = list(trainer.run())
        weights = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).numpy()
        np.savez(Path(out) / f"rank{rank}.npz", weights=weights,
                 loss=np.stack([r.loss for r in reports]), clean_prob=np.stack([r.clean_prob for r in reports]),
                 probs=np.stack([r.predicted_prob for r in reports]))
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(
            [{"epoch": r.epoch, "phase": r.phase, "losses": r.losses, "test_accuracy": r.test_accuracy,
              "samples_trained": r.samples_trained, "gmm": r.gmm.to_dict() if r.gmm else None} for r in reports]))
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def _spawned(rank: int, world: int, port: int, *args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    _train(rank, world, *args)


def run_ranks(world: int, out: Path, *args) -> list[tuple[dict, list]]:
    out.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_spawned, args=(world, free_port(), str(out), *args), nprocs=world, join=True,
                       start_method="spawn")
    return load(out, world)


def load(out: Path, world: int) -> list[tuple[dict, list]]:
    return [(dict(np.load(out / f"rank{r}.npz")), json.loads((out / f"rank{r}.json").read_text())) for r in range(world)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="module")
def model_dir_no_dropout(tmp_path_factory):
    return str(build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert-no-dropout"), dropout=0.0))


def test_two_ranks_agree_cover_every_sample_and_resume(tmp_path, model_dir):
    (a, ra), (b, rb) = run_ranks(2, tmp_path / "run", model_dir, "selfmix", 2, 0.1)
    assert [r["phase"] for r in ra] == ["warmup", "selfmix"]
    assert ra == rb  # same losses, GMM, test accuracy, sample counts on both ranks
    for key in ("weights", "loss", "clean_prob", "probs"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["loss"].shape == (2, 42) and (a["loss"] > 0).all() and (a["probs"] > 0).all()  # every row scored
    assert np.isfinite(a["clean_prob"]).all()
    assert [r["samples_trained"] for r in ra][0] == 42  # both shares counted once
    # rank 0 wrote one checkpoint; a 2-rank run resumes from it for one more epoch
    ckpt = tmp_path / "run" / "ckpt"
    assert json.loads((ckpt / "latest.json").read_text())["epoch"] == 2
    mp.start_processes(_spawned, args=(2, free_port(), str(tmp_path / "run"), model_dir, "selfmix", 3, 0.1, True),
                       nprocs=2, join=True, start_method="spawn")
    (c, rc), (d, rd) = load(tmp_path / "run", 2)
    assert [r["epoch"] for r in rc] == [3] and rc == rd
    np.testing.assert_array_equal(c["weights"], d["weights"])


def test_two_ranks_take_the_single_process_steps(tmp_path, model_dir_no_dropout):
    # dropout off everywhere: only the data order matters, and it is the same
    (tmp_path / "one").mkdir()
    _train(0, 1, str(tmp_path / "one"), model_dir_no_dropout, "ce", 3, 0.0)
    [(one, r_one)] = load(tmp_path / "one", 1)
    (two, r_two), _ = run_ranks(2, tmp_path / "two", model_dir_no_dropout, "ce", 3, 0.0)
    np.testing.assert_allclose(two["weights"], one["weights"], atol=1e-5)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4, atol=1e-5)
    for x, y in zip(r_two, r_one):
        assert x["losses"]["ce"] == pytest.approx(y["losses"]["ce"], rel=1e-4)
        assert x["test_accuracy"] == pytest.approx(y["test_accuracy"])
        assert x["samples_trained"] == y["samples_trained"]


def test_torchrun_cli_trains_and_rank_0_alone_writes(tmp_path, model_dir):
    train = tmp_path / "train.csv"
    tiny_frame(40).to_csv(train, index=False)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "selfmix_core", "train", "--train", str(train), "--noise", "sym", "--noise-rate", "0.2",
         "--model", model_dir, "--epochs", "2", "--warmup-epochs", "1", "--max-length", "16", "--batch-size", "8",
         "--device", "cpu", "--no-progress", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x 2 processes" in r.stdout
    assert r.stdout.count("epoch 2 [selfmix]") == 1  # printed by rank 0 only
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["detection"] is not None
    lines = (out / "epochs.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch-002", "latest.json"]
