"""`python -m selfmix_core train` end to end on tiny data with a tiny model."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from selfmix_core.cli import main
from tests.conftest import make_frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_files(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.jsonl"
    make_frame(60, seed=0).to_csv(train, index=False)
    make_frame(30, seed=1).to_json(test, orient="records", lines=True)
    return train, test


def base_args(train, test, model, out):
    return ["train", "--train", str(train), "--test", str(test), "--model", str(model), "--out", str(out),
            "--epochs", "3", "--warmup-epochs", "1", "--max-length", "16", "--batch-size", "8", "--lr", "1e-3",
            "--no-progress"]


def with_option(args, flag, value):
    """A copy of args with the value after `flag` replaced."""
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def test_train_writes_metrics_and_samples(tmp_path, tiny_files, tiny_model_dir, capsys):
    train, test = tiny_files
    out = tmp_path / "out"
    rc = main(base_args(train, test, tiny_model_dir, out) + ["--noise", "sym", "--noise-rate", "0.2", "--seed", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("epoch ") >= 3 and "[warmup]" in printed and "[selfmix]" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "selfmix"
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3]
    assert [e["phase"] for e in m["epochs"]] == ["warmup", "selfmix", "selfmix"]
    for e in m["epochs"]:
        assert {"epoch", "phase", "test_accuracy", "detection_auroc", "seconds"} <= set(e)
        assert 0 <= e["test_accuracy"] <= 1
    assert m["last_test_accuracy"] == m["epochs"][-1]["test_accuracy"]
    assert m["best_test_accuracy"] == max(e["test_accuracy"] for e in m["epochs"])
    assert set(m["detection"]) >= {"auroc", "precision", "recall", "f1"}
    assert m["noise"]["rate_realised"] == pytest.approx(12 / 60)
    s = pd.read_csv(out / "samples.csv")
    assert {"index", "text", "given_label", "true_label", "clean_prob", "predicted_label", "is_label_issue"} <= set(s.columns)
    assert len(s) == 60
    assert {"label_score", "predicted_prob", "top1_label", "top1_prob", "top3_label", "top3_prob"} <= set(s.columns)
    assert (s["top1_label"] == s["predicted_label"]).all() and (s["top1_prob"] >= s["top2_prob"]).all()
    assert (s["given_label"] != s["true_label"]).sum() == 12  # the injected flips, names not ids
    assert set(s["given_label"]) <= {"fruit", "vehicle", "colour"}
    # issue #13: the near-duplicate and outlier columns, from the kept embeddings of the flags epoch
    assert list(s.columns[-4:]) == ["is_near_duplicate", "near_duplicate_group", "is_outlier", "outlier_score"]
    assert s["outlier_score"].notna().all()
    kept = sorted(p.name for p in (out / "reports").glob("epoch-*.emb.npy"))
    assert f"epoch-{m['epochs'][-1]['epoch']:03d}.emb.npy" in kept and len(kept) <= 2
    assert (out / "checkpoints" / "latest.json").is_file()


def test_ce_without_test_or_true_labels_and_subset(tmp_path, tiny_files, tiny_model_dir):
    train, _ = tiny_files
    out = tmp_path / "ce"
    args = ["train", "--train", str(train), "--model", str(tiny_model_dir), "--out", str(out), "--method", "ce",
            "--epochs", "1", "--max-length", "16", "--batch-size", "8", "--max-train-samples", "40", "--no-progress"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == "ce" and m["detection"] is None and m["best_test_accuracy"] is None
    assert m["n_train"] == 40
    s = pd.read_csv(out / "samples.csv")
    assert len(s) == 40 and "true_label" not in s.columns


def test_resume_with_more_epochs_continues_and_other_settings_are_refused(tmp_path, tiny_files, tiny_model_dir,
                                                                          capsys):
    train, test = tiny_files
    out = tmp_path / "r"
    args = base_args(train, test, tiny_model_dir, out)
    short = with_option(args, "--epochs", "2")
    assert main(short) == 0
    changed = with_option(args, "--lr", "5e-4")
    assert main(changed + ["--resume"]) == 2
    assert "lr was 0.001, now 0.0005" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3]


def test_resume_after_interruption(tmp_path, tiny_files, tiny_model_dir, monkeypatch):
    from selfmix_core import trainer as trainer_mod

    train, test = tiny_files
    out = tmp_path / "k"
    args = base_args(train, test, tiny_model_dir, out)
    real = trainer_mod.SelfMixTrainer._after_epoch

    def interrupt_after_epoch_2(self, report):
        real(self, report)
        if report.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod.SelfMixTrainer, "_after_epoch", interrupt_after_epoch_2)
    assert main(args) == 130
    monkeypatch.setattr(trainer_mod.SelfMixTrainer, "_after_epoch", real)
    assert main(args + ["--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--text-column", "body"], "body"),
        (["--noise", "sym", "--noise-rate", "1.5"], "noise-rate"),
        (["--tau", "0"], "tau"),
        (["--model", "/nonexistent/model"], "does not exist"),
    ],
)
def test_bad_input_exit_2_in_process(tmp_path, tiny_files, tiny_model_dir, capsys, extra, needle):
    train, test = tiny_files
    args = base_args(train, test, tiny_model_dir, tmp_path / "o") + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err


def test_bad_input_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"text,label\n\xff\xfe broken,1\nok,0\n")
    r = subprocess.run([sys.executable, "-m", "selfmix_core", "train", "--train", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "UTF-8" in r.stderr


def test_resume_records_an_epoch_checkpointed_but_never_recorded(tmp_path, tiny_files, tiny_model_dir):
    """A kill between the checkpoint and epochs.jsonl must not lose that epoch's row."""
    train, test = tiny_files
    out = tmp_path / "gap"
    args = base_args(train, test, tiny_model_dir, out)
    short = with_option(args, "--epochs", "2")
    assert main(short) == 0
    lines = (out / "epochs.jsonl").read_text().splitlines()
    (out / "epochs.jsonl").write_text(lines[0] + "\n")  # as if killed before epoch 2 was recorded
    assert main(args + ["--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3]


def test_flags_epoch_picks_whose_flags_samples_csv_holds(tmp_path, tiny_files, tiny_model_dir, capsys):
    """metrics.json names the recommended epoch; samples.csv holds its flags by default,
    the last epoch's with --flags-epoch last, epoch N's with --flags-epoch N."""
    train, test = tiny_files
    big = tmp_path / "train120.csv"
    make_frame(120, seed=0).to_csv(big, index=False)  # 12 held out: the rule is on
    args = with_option(base_args(big, test, tiny_model_dir, tmp_path / "rec"), "--epochs", "3")
    args += ["--noise", "sym", "--noise-rate", "0.2", "--extra-warmup-epochs", "0"]
    assert main(args) == 0
    out = tmp_path / "rec"
    m = json.loads((out / "metrics.json").read_text())
    rec = m["recommended_epoch"]
    assert isinstance(rec, int) and 1 <= rec <= 3 and m["recommendation"]
    assert m["flags_epoch"] == rec
    assert all(e["val_accuracy"] is not None and e["n_val"] == 12 for e in m["epochs"])
    assert "recommended epoch" in capsys.readouterr().out
    per_epoch = {}
    for e in (1, 2, 3):
        r = json.loads((out / "reports" / f"epoch-{e:03d}.json").read_text())
        assert r["epoch"] == e
        per_epoch[e] = r
    s = pd.read_csv(out / "samples.csv")
    from selfmix_core.cli import load_report

    np_rec = load_report(out / "reports", rec)
    assert (s["is_label_issue"].to_numpy() == np_rec.is_label_issue).all()

    for choice, epoch in (("last", 3), ("1", 1)):
        o = tmp_path / f"flags-{choice}"
        assert main(with_option(args, "--out", str(o)) + ["--flags-epoch", choice]) == 0
        mm = json.loads((o / "metrics.json").read_text())
        assert mm["flags_epoch"] == epoch and mm["recommended_epoch"] == rec
        ss = pd.read_csv(o / "samples.csv")
        assert (ss["clean_prob"].to_numpy() == pytest.approx(load_report(o / "reports", epoch).clean_prob, nan_ok=True))


@pytest.mark.parametrize("value", ["0", "best", "-2"])
def test_flags_epoch_rejects_bad_values(tmp_path, tiny_files, tiny_model_dir, capsys, value):
    train, test = tiny_files
    with pytest.raises(SystemExit) as exc:
        main(base_args(train, test, tiny_model_dir, tmp_path / "o") + ["--flags-epoch", value])
    assert exc.value.code == 2
    assert "--flags-epoch" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, needle", [
    ("lr", 1e30, "lr must be a number above 0 and at most 1"),
    ("lr", float("nan"), "lr must be"),
    ("alpha", float("inf"), "alpha must be a number above 0 and at most 100"),
    ("temperature", float("inf"), "temperature must be"),
    ("seed", -1, "seed must be a whole number from 0 to 4294967295"),
    ("seed", 2**40, "seed must be"),
    ("device", "bogus", "device must be auto, cpu, cuda, cuda:N"),
    ("device", "cuda:x", "device must be"),
])
def test_config_refuses_non_finite_and_absurd_values(field, value, needle):
    from selfmix_core.config import LossWeights, ModelConfig, TrainConfig

    with pytest.raises(ValueError, match=needle):
        TrainConfig(**{field: value})
    for bad in (float("inf"), float("nan"), -0.1, 1e9):
        with pytest.raises(ValueError, match="lambda_p must be a number from 0 to 100"):
            LossWeights(lambda_p=bad)
    with pytest.raises(ValueError, match="max_length must be at most"):
        ModelConfig(max_length=10**9)
    assert TrainConfig(device="cuda:1", seed=2**32 - 1).device == "cuda:1"  # valid, checked again at the run


def test_max_length_beyond_the_model_positions_is_refused(tiny_model_factory):
    from transformers import BertConfig, RobertaConfig

    from selfmix_core.config import ModelConfig
    from selfmix_core.model import ModelLoadError, TextClassifier, check_max_length

    check_max_length(512, BertConfig(max_position_embeddings=512))
    with pytest.raises(ModelLoadError, match="max_length 513 is longer than the 512 token positions"):
        check_max_length(513, BertConfig(max_position_embeddings=512))
    with pytest.raises(ModelLoadError, match="from 8 to 512"):  # RoBERTa: 514 embeddings, 512 usable
        check_max_length(514, RobertaConfig(max_position_embeddings=514))
    encoder = tiny_model_factory(2).encoder
    with pytest.raises(ModelLoadError, match="--max-length"):
        TextClassifier(encoder, 2, ModelConfig(max_length=1000))


def test_plain_numeric_labels_in_samples_csv(tmp_path, tiny_model_dir):
    """samples.csv escapes cells starting with - against formulas, so labels -1 came out as
    '-1; --plain-numeric-labels writes the label columns as they are."""
    frame = make_frame(30, seed=0, k=2)
    frame["label"] = frame["label"].map({"fruit": "-1", "vehicle": "1"})
    train = tmp_path / "numeric.csv"
    frame.to_csv(train, index=False)
    for flag, expected in (([], "'-1"), (["--plain-numeric-labels"], "-1")):
        out = tmp_path / f"out{len(flag)}"
        args = ["train", "--train", str(train), "--model", str(tiny_model_dir), "--out", str(out), "--method", "ce",
                "--epochs", "1", "--max-length", "16", "--batch-size", "8", "--no-progress", *flag]
        assert main(args) == 0
        s = pd.read_csv(out / "samples.csv", dtype=str)
        assert s["given_label"][0] == expected and set(s["given_label"]) == {expected, "1"}
        assert set(s["predicted_label"]) <= {expected, "1"}
        assert set(s["top2_label"]) <= {expected, "1"} and s["top3_label"].isna().all()  # 2 classes: no third


def test_speed_flags_reach_the_config_and_metrics(tmp_path, tiny_files, tiny_model_dir, capsys):
    """--no-* turn each speed option off, --test-sample sets the sample; metrics.json
    records the config and how many test texts each epoch was evaluated on."""
    train, test = tiny_files
    out = tmp_path / "out"
    rc = main(base_args(train, test, tiny_model_dir, out) + ["--no-group-by-length", "--no-group-selfmix",
                                                             "--no-cache-tokens",
                                                             "--no-bf16", "--no-fast-scoring", "--no-fused-adam",
                                                             "--test-sample", "12"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["speed"] == {"group_by_length": False, "group_chunk": 16, "group_selfmix": False,
                                    "cache_tokens": False,
                                    "bf16_cpu": False, "fast_scoring": False, "fused_adam": False,
                                    "provisional_every": 0.0, "test_sample": 12}
    assert [(e["n_test"], e["test_sampled"]) for e in m["epochs"]] == [(12, True), (12, True), (30, False)]
    assert main(base_args(train, test, tiny_model_dir, tmp_path / "bad") + ["--test-sample", "-1"]) == 2
    assert "--test-sample must be" in capsys.readouterr().err
    assert main(base_args(train, test, tiny_model_dir, tmp_path / "bad2") + ["--threads", "0"]) == 2
