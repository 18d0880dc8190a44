"""Speed options (SpeedConfig, speed.py): grouped batching, cached tokens, bf16 only where
supported, the sampled test evaluation, and old configs loading with every option off.
No timing is asserted here (docs/BENCHMARKS.md, section speed, measures it)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from selfmix_core import speed
from selfmix_core.config import ModelConfig, SpeedConfig, TrainConfig
from selfmix_core.trainer import SelfMixTrainer


def cfg(**kw):
    base = dict(epochs=3, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", model=ModelConfig(max_length=16),
                score_batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


def varied_dataset(n=61, seed=0):
    """n texts of 1 to 12 words (so token lengths differ), 3 classes."""
    from selfmix_core.data import dataset_from_frame
    from tests.conftest import NAMES, WORDS

    rng = np.random.default_rng(seed)
    rows = [{"text": " ".join(rng.choice(WORDS[i % 3], size=int(rng.integers(1, 13)))), "label": NAMES[i % 3]}
            for i in range(n)]
    return dataset_from_frame(pd.DataFrame(rows), source="varied")


# ---- grouped batching --------------------------------------------------------------------
@pytest.mark.parametrize("m,bs,chunk", [(0, 4, 2), (1, 4, 2), (37, 8, 2), (64, 8, 4), (100, 32, 16), (45, 4, 1)])
def test_grouped_batches_visit_every_sample_once(m, bs, chunk):
    rng = np.random.default_rng(m)
    lengths = rng.integers(1, 40, size=200)
    order = rng.permutation(200)[:m]
    batches = speed.grouped_batches(order, lengths, bs, chunk, torch.Generator().manual_seed(1))
    flat = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    assert sorted(flat.tolist()) == sorted(order.tolist())  # each index exactly once
    assert all(len(b) == bs for b in batches[:-1])  # only the last may be short
    again = speed.grouped_batches(order, lengths, bs, chunk, torch.Generator().manual_seed(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # deterministic for a generator
    assert np.array_equal(speed.grouped_order(order, lengths, bs, chunk, torch.Generator().manual_seed(1)), flat)


def test_grouped_batches_cut_padding_and_stay_random():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 64, size=2048)
    order = rng.permutation(2048)
    batches = speed.grouped_batches(order, lengths, 32, 16, torch.Generator().manual_seed(0))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = sum(32 * lengths[order[i:i + 32]].max() for i in range(0, 2048, 32))
    assert padded < 0.8 * plain
    other = speed.grouped_batches(order, lengths, 32, 16, torch.Generator().manual_seed(1))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other))  # the batch order is shuffled
    with pytest.raises(ValueError, match="batch_size"):
        speed.grouped_batches(order, lengths, 0, 16, torch.Generator())


def test_trainer_epochs_visit_every_sample_once_with_grouping(tiny_model_factory, tokenizer, monkeypatch):
    """A CE epoch trains each sample once; a SelfMix epoch passes over X once (and over U
    as the cycler wraps), with grouping on."""
    data = varied_dataset()
    t = SelfMixTrainer(cfg(epochs=2, speed=SpeedConfig(group_chunk=2)), data, model=tiny_model_factory(3),
                       tokenizer=tokenizer)
    seen = []
    real = t._optimise

    def spy(parts, loss_fn):
        seen.append(tuple(np.asarray(p).copy() for p in parts))
        return real(parts, loss_fn)

    monkeypatch.setattr(t, "_optimise", spy)
    it = t.run()
    next(it)  # the warm-up epoch
    trained = np.flatnonzero(t.split.in_training & ~t.split.in_validation)
    ce = np.concatenate([p[0] for p in seen])
    assert sorted(ce.tolist()) == trained.tolist()
    seen.clear()
    report = next(it)  # the SelfMix epoch
    assert report.phase == "selfmix"
    x_seen = np.concatenate([p[0] for p in seen])
    n_x = report.train_n_clean
    assert len(x_seen) >= n_x and len(set(x_seen[:n_x].tolist())) == n_x  # X's first pass: no repeats


@pytest.mark.parametrize("group_selfmix", [True, False])
def test_selfmix_batches_are_grouped_only_when_asked(group_selfmix, tiny_model_factory, tokenizer, monkeypatch):
    """With group_selfmix off, a SelfMix epoch's X and U streams are plain shuffles (EmbMix
    partners from random batches) while the warm-up stays grouped by length."""
    data = varied_dataset()
    t = SelfMixTrainer(cfg(epochs=2, speed=SpeedConfig(group_chunk=2, group_selfmix=group_selfmix)), data,
                       model=tiny_model_factory(3), tokenizer=tokenizer)
    calls = []
    real = t._grouped

    def spy(order, batch_size, gen, as_batches=False):
        calls.append(as_batches)
        return real(order, batch_size, gen, as_batches)

    monkeypatch.setattr(t, "_grouped", spy)
    it = t.run()
    next(it)
    assert calls == [True]  # the warm-up epoch's batches
    calls.clear()
    assert next(it).phase == "selfmix"
    assert bool(calls) is group_selfmix  # the X and U cyclers' passes


def test_configs_saved_before_group_selfmix_keep_grouping_selfmix_batches():
    d = TrainConfig().to_dict()
    del d["speed"]["group_selfmix"]  # saved with the speed defaults before the option existed
    assert TrainConfig.from_dict(d).speed.group_selfmix is True
    d["speed"]["group_by_length"] = False
    assert TrainConfig.from_dict(d).speed.group_selfmix is False


# ---- cached tokens -----------------------------------------------------------------------
def test_token_cache_collates_like_the_tokenizer(tokenizer):
    texts = ["a", "the quick brown fox jumps over the lazy dog again and again", "two words", ""]
    cache = speed.TokenCache(tokenizer, texts, max_length=8)
    idx = [1, 0, 3, 2]
    got = cache.collate(idx)
    want = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=8, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"])
    assert cache.lengths.tolist() == [int(m.sum()) for m in tokenizer(texts, truncation=True, max_length=8,
                                                                       return_tensors="pt", padding=True)["attention_mask"]]
    with pytest.raises(ValueError, match="indices"):
        cache.collate([9])
    with pytest.raises(ValueError, match="at least one"):
        cache.collate([])


def test_cached_and_uncached_runs_match(tiny_model_factory, tokenizer):
    """Caching the tokens changes nothing in the numbers (fp32, no grouping)."""
    data = varied_dataset()
    reports = []
    for cache in (False, True):
        sp = dataclasses.replace(SpeedConfig.off(), cache_tokens=cache)
        t = SelfMixTrainer(cfg(epochs=2, speed=sp), data, model=tiny_model_factory(3), tokenizer=tokenizer)
        reports.append(list(t.run()))
    for a, b in zip(*reports):
        np.testing.assert_array_equal(a.loss, b.loss)
        assert a.losses == b.losses


# ---- bf16 only where supported -------------------------------------------------------------
@pytest.mark.parametrize("supported", [True, False])
def test_bf16_only_where_the_cpu_supports_it(supported, tiny_model_factory, tokenizer, monkeypatch):
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: supported)
    data = varied_dataset(30)
    t = SelfMixTrainer(cfg(epochs=2), data, model=tiny_model_factory(3), tokenizer=tokenizer)
    assert t._amp is supported
    enc = t._encode(["the red car"])
    with torch.no_grad(), t._autocast():
        logits = t.model(**enc)  # the head's Linear runs in bf16 under autocast
    assert logits.dtype == (torch.bfloat16 if supported else torch.float32)
    off = SelfMixTrainer(cfg(epochs=2, speed=SpeedConfig(bf16_cpu=False)), data, model=tiny_model_factory(3),
                         tokenizer=tokenizer)
    assert off._amp is False  # asked off: fp32 even where supported
    reports = list(t.run())  # runs either way; the losses and the GMM input stay fp32
    assert reports[-1].loss.dtype == np.float32 and np.isfinite(reports[-1].loss).all()


def test_use_bf16_by_device(monkeypatch):
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: True)
    assert speed.use_bf16(torch.device("cpu"), True) is True
    assert speed.use_bf16(torch.device("cpu"), False) is False
    assert speed.use_bf16(torch.device("cuda"), False) is True  # CUDA as before the option
    assert speed.use_bf16(torch.device("mps"), True) is False
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: False)
    assert speed.use_bf16(torch.device("cpu"), True) is False


@pytest.mark.parametrize("flags,expected", [("fpu avx512f avx512_bf16 sse", True), ("fpu avx2 avx512f", False)])
def test_cpu_capability_check_reads_the_cpu_flags(flags, expected, monkeypatch):
    class FakePath:
        def __init__(self, *_):
            pass

        def read_text(self):
            return f"processor : 0\nflags : {flags}\n"

    monkeypatch.setattr(speed, "Path", FakePath)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert speed.cpu_supports_bf16.__wrapped__() is expected


# ---- sampled test evaluation ---------------------------------------------------------------
def test_stratified_sample_is_deterministic_and_stratified():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    a = speed.stratified_sample(labels, 100, np.random.default_rng([3, 11]))
    b = speed.stratified_sample(labels, 100, np.random.default_rng([3, 11]))
    c = speed.stratified_sample(labels, 100, np.random.default_rng([4, 11]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.bincount(labels[a]).tolist() == [50, 30, 20]
    assert len(np.unique(a)) == 100
    assert np.array_equal(speed.stratified_sample(labels, 5000, np.random.default_rng(0)), np.arange(1000))
    with pytest.raises(ValueError, match="sample size"):
        speed.stratified_sample(labels, 0, np.random.default_rng(0))


def test_sampled_test_evaluation_is_deterministic_for_a_seed(tiny_model_factory, tokenizer):
    train, test = varied_dataset(40, seed=0), varied_dataset(45, seed=1)
    runs = []
    for seed in (5, 5):
        t = SelfMixTrainer(cfg(epochs=3, seed=seed, speed=SpeedConfig(test_sample=12)), train, test,
                           model=tiny_model_factory(3), tokenizer=tokenizer)
        reports = list(t.run())
        runs.append((t._test_eval[0].copy(), [(r.n_test, r.test_sampled, r.test_accuracy) for r in reports]))
    (idx_a, rows_a), (idx_b, rows_b) = runs
    assert np.array_equal(idx_a, idx_b)
    assert rows_a == rows_b
    assert [r[:2] for r in rows_a] == [(12, True), (12, True), (45, False)]  # the whole set at the end
    whole = SelfMixTrainer(cfg(epochs=2, speed=SpeedConfig(test_sample=0)), train, test, model=tiny_model_factory(3),
                           tokenizer=tokenizer)
    assert [(r.n_test, r.test_sampled) for r in whole.run()] == [(45, False), (45, False)]


def test_metrics_record_says_how_many_test_texts():
    from selfmix_core.records import epoch_record

    class R:  # the fields epoch_record reads
        pass

    fields = {f.name: None for f in dataclasses.fields(__import__("selfmix_core.reports", fromlist=["x"]).EpochReport)}
    r = R()
    r.__dict__.update(fields, n_test=12, test_sampled=True, losses={}, samples_trained=1, train_seconds=1.0,
                      warnings=[])
    rec = epoch_record(r)
    assert rec["n_test"] == 12 and rec["test_sampled"] is True


# ---- configuration and migration ---------------------------------------------------------------
def test_old_configs_load_with_every_speed_option_off():
    new = TrainConfig()
    assert new.speed == SpeedConfig() and new.speed.bf16_cpu and new.speed.group_by_length
    d = new.to_dict()
    assert TrainConfig.from_dict(d) == new  # round trip keeps them on
    del d["speed"]  # saved before SpeedConfig existed
    assert TrainConfig.from_dict(d).speed == SpeedConfig.off()
    older = {k: v for k, v in d.items() if k not in ("fast", "validation")}  # before FastChoices too
    assert TrainConfig.from_dict(older).speed == SpeedConfig.off()
    off = SpeedConfig.off()
    assert not (off.group_by_length or off.group_selfmix or off.cache_tokens or off.bf16_cpu or off.fast_scoring
                or off.fused_adam)
    assert off.test_sample == 0


def test_speed_config_refuses_bad_values():
    with pytest.raises(ValueError, match="group_chunk"):
        SpeedConfig(group_chunk=0)
    with pytest.raises(ValueError, match="test_sample"):
        SpeedConfig(test_sample=-1)
    with pytest.raises(ValueError, match="threads"):
        speed.configure_threads(0)
    assert speed.physical_cores() >= 1


def test_checkpoint_without_speed_resumes_with_options_off(tiny_model_factory, tokenizer, tmp_path):
    import json

    data = varied_dataset(30)
    old = cfg(epochs=2, speed=SpeedConfig.off())
    first = SelfMixTrainer(old, data, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=tmp_path)
    it = first.run()
    next(it)
    it.close()
    state = next(tmp_path.glob("epoch-*")) / "state.json"
    meta = json.loads(state.read_text())
    del meta["config"]["speed"]  # as written before SpeedConfig existed
    state.write_text(json.dumps(meta))
    resumed = SelfMixTrainer(TrainConfig.from_dict(meta["config"]), data, model=tiny_model_factory(3),
                             tokenizer=tokenizer, checkpoint_dir=tmp_path, resume=True)
    assert resumed.state.epochs_done == 1 and resumed.config.speed == SpeedConfig.off()
    with pytest.raises(ValueError, match="speed"):
        SelfMixTrainer(cfg(epochs=2), data, model=tiny_model_factory(3), tokenizer=tokenizer,
                       checkpoint_dir=tmp_path, resume=True)


def test_fused_adam_follows_the_option(tiny_model_factory, tokenizer):
    data = varied_dataset(30)
    on = SelfMixTrainer(cfg(), data, model=tiny_model_factory(3), tokenizer=tokenizer)
    off = SelfMixTrainer(cfg(speed=SpeedConfig(fused_adam=False)), data, model=tiny_model_factory(3),
                         tokenizer=tokenizer)
    assert on.optimizer.defaults["fused"] is True
    assert not off.optimizer.defaults["fused"]


# ---- provisional flags -----------------------------------------------------------------------
def test_provisional_steps():
    assert speed.provisional_steps(10, 0.5) == {5}
    assert speed.provisional_steps(10, 0.25) == {3, 5, 8}
    assert speed.provisional_steps(10, 0.0) == set()
    assert speed.provisional_steps(1, 0.5) == set()
    assert speed.provisional_steps(3, 0.9) == {3} - {3}  # 90% of 3 steps rounds up to the last: none


def test_provisional_flags_leave_the_run_unchanged(tiny_model_factory, tokenizer):
    """Provisional rankings come during the first epoch only, over the samples trained so
    far, and the run's reports are bitwise those of a run without them."""
    from selfmix_core.noise import noisy_dataset
    from selfmix_core.trainer import TrainerCallback

    data, _ = noisy_dataset(varied_dataset(80), "sym", 0.3, np.random.default_rng(0))
    got = []

    class Keep(TrainerCallback):
        def on_provisional(self, trainer, flags):
            got.append(flags)

    runs = []
    for every in (0.0, 0.5):
        t = SelfMixTrainer(cfg(epochs=2, speed=SpeedConfig(provisional_every=every)), data,
                           model=tiny_model_factory(3), tokenizer=tokenizer, callbacks=[Keep()])
        runs.append(list(t.run()))
    assert len(got) == 1 and got[0].epoch == 1 and got[0].provisional
    f = got[0]
    steps = int(np.ceil((~runs[1][0].in_validation).sum() / 8))
    assert f.samples_seen == 8 * int(np.ceil(0.5 * steps)) == len(f.index) == len(f.clean_prob)
    assert len(np.unique(f.index)) == len(f.index) and not runs[1][0].in_validation[f.index].any()
    assert f.auroc is None or 0.0 <= f.auroc <= 1.0
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_array_equal(a.clean_prob, b.clean_prob)
    with pytest.raises(ValueError, match="provisional_every"):
        SpeedConfig(provisional_every=1.0)


# ---- provisional flags in the app (the worker keeps them; the Train page shows them) ---------


def _flags(n=6, seed=0):
    from selfmix_core.speed import ProvisionalFlags

    rng = np.random.default_rng(seed)
    return ProvisionalFlags(epoch=1, fraction=0.5, samples_seen=n, index=np.arange(n) * 2,
                            loss=rng.random(n), clean_prob=rng.random(n), predicted_label=np.arange(n) % 3,
                            auroc=None, seconds=3.5)


def test_provisional_flags_round_trip_and_unreadable_file(tmp_path):
    from selfmix_core.speed import load_provisional, save_provisional

    flags = _flags()
    path = tmp_path / "provisional.npz"
    assert load_provisional(path) is None  # none yet
    save_provisional(path, flags)
    back = load_provisional(path)
    assert (back.epoch, back.fraction, back.samples_seen, back.auroc, back.seconds) == (1, 0.5, 6, None, 3.5)
    np.testing.assert_array_equal(back.index, flags.index)
    np.testing.assert_allclose(back.clean_prob, flags.clean_prob, rtol=1e-6)
    np.testing.assert_array_equal(back.predicted_label, flags.predicted_label)
    path.write_bytes(b"not an npz")
    assert load_provisional(path) is None  # a preview is never worth an error


def test_train_page_shows_provisional_flags_before_the_first_epoch(tmp_path, monkeypatch):
    import pandas as pd

    from selfmix_core.config import TrainConfig
    from selfmix_core.speed import PROVISIONAL_FILE, save_provisional
    from selfmix_core.store import Store
    from tests.test_app_pages import open_app

    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(12)], "label": ["a", "b", "c"] * 4})
    ds = store.add_dataset("d", frame, {"text_column": "text", "label_column": "label", "true_label_column": None,
                                        "label_names": ["a", "b", "c"]})
    run_id = store.create_run(ds, TrainConfig(epochs=2, warmup_epochs=1), name="r")
    flags = _flags()
    save_provisional(store.run_dir(run_id) / PROVISIONAL_FILE, flags)
    store.set_run_status(run_id, "failed", error="stopped by the test")  # no worker: a run that ended in epoch 1
    store.close()
    at = open_app("train")
    assert any("First look, provisional" in i.value and "after 50% of epoch 1" in i.value
               and "ended before its first epoch" in i.value for i in at.info)
    [table] = [d.value for d in at.dataframe if "clean_prob" in d.value.columns]
    order = np.argsort(flags.clean_prob, kind="stable")
    assert list(table["sample"]) == list(flags.index[order])  # most suspicious first
    assert list(table["text"]) == [f"text {i}" for i in flags.index[order]]
    assert list(table["given"]) == [["a", "b", "c"][i % 3] for i in flags.index[order]]


def _equality_cell(key_seed: int, method: str, speed: bool, acc: float, auroc: float, rec=None) -> dict:
    cell = {"format": 1, "key": f"trec-asym-0.4-{method}-{key_seed}",
            "cell": {"dataset": "trec", "noise": "asym", "rate": 0.4, "method": method, "seed": key_seed},
            "settings": {"max_train_samples": 2000, "max_length": 32, "epochs": 6, "warmup_epochs": 2, "lr": 5e-5,
                         "batch_size": 32, "data_seed": 0, "speed": speed},
            "n_train": 2000, "last_test_accuracy": acc, "detection_last": {"auroc": auroc},
            "machine": "test machine", "recommended_epoch": None}
    if rec is not None:
        cell.update(recommended_epoch=4, recommended_test_accuracy=rec, detection_recommended={"auroc": auroc})
    return cell


def _write_cells(folder, cells):
    import json

    (folder / "cells").mkdir(parents=True)
    for c in cells:
        (folder / "cells" / f"{c['key']}.json").write_text(json.dumps(c))


def test_speed_equality_pairs_seeds_and_checks_the_mean(tmp_path):
    """bench_speed_equality: paired by cell key, the goal on the mean of new - old over seeds."""
    import bench.bench_speed_equality as eq

    old, new = tmp_path / "old", tmp_path / "new"
    _write_cells(old, [_equality_cell(s, "ce", False, 0.80 + s / 100, 0.70) for s in range(3)]
                 + [_equality_cell(s, "selfmix", False, 0.90, 0.90, rec=0.9) for s in range(3)])
    # ce: +0.02, -0.02, +0.003 -> mean +0.001 (met); selfmix: +0.05 each (missed); seed 9 has no partner
    _write_cells(new, [_equality_cell(s, "ce", True, 0.80 + s / 100 + d, 0.70) for s, d in
                       zip(range(3), (0.02, -0.02, 0.003))]
                 + [_equality_cell(s, "selfmix", True, 0.95, 0.90, rec=0.9) for s in range(3)]
                 + [_equality_cell(9, "ce", True, 0.5, 0.5)])
    text = eq.render(old, new, "cmd")
    assert "| trec-2,000 asym 40% | `ce` | last acc | 3 | 81.0 | 1.0 | 81.1 | +0.1 | 2.0 | 1.2 |" in text
    assert "| trec-2,000 asym 40% `ce`: mean last acc within 0.01 (3 seeds) | yes | +0.1 points (standard error 1.2) |" in text
    assert "| trec-2,000 asym 40% `selfmix`: mean last acc within 0.01 (3 seeds) | **no** | +5.0 points (standard error 0.0) |" in text
    assert "recommended acc" in text and "| 9 |" not in text
    assert "3 of 4 goals met" in text
    # a --speed-off folder is compared too, under its own heading, and sets no goal
    partial = tmp_path / "partial"
    cells = [_equality_cell(s, "ce", True, 0.80 + s / 100, 0.70) for s in range(3)]
    for c in cells:
        c["settings"]["speed_off"] = "bf16_cpu,group_by_length"
    _write_cells(partial, cells)
    both = eq.render(old, [new, partial], "cmd")
    assert "### Old path and new without bf16_cpu, group_by_length (`partial`)" in both
    assert "| trec-2,000 asym 40% | `ce` | last acc | 3 | 81.0 | 1.0 | 81.0 | +0.0 | 0.0 | 0.0 |" in both
    assert "3 of 4 goals met" in both


def test_speed_equality_refuses_folders_that_differ_in_more_than_speed(tmp_path):
    import bench.bench_speed_equality as eq

    old, new, other = tmp_path / "old", tmp_path / "new", tmp_path / "other"
    _write_cells(old, [_equality_cell(0, "ce", False, 0.8, 0.7)])
    _write_cells(new, [_equality_cell(0, "ce", True, 0.8, 0.7)])
    longer = _equality_cell(0, "ce", True, 0.8, 0.7)
    longer["settings"]["max_length"] = 64
    _write_cells(other, [longer])
    with pytest.raises(ValueError, match="max_length"):
        eq.render(old, other, "cmd")
    with pytest.raises(ValueError, match="without --speed"):
        eq.render(new, old, "cmd")
    assert eq.main([str(old), str(other), "--no-doc"]) == 2
