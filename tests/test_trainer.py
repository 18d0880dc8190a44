"""Trainer: event order, stop flag, reports, fallbacks, review decisions, resume."""

import numpy as np
import pytest
import torch

from selfmix_core.config import ModelConfig, SpeedConfig, TrainConfig
from selfmix_core.trainer import SelfMixTrainer, TrainerCallback, TrainerControl


def cfg(**kw):
    base = dict(epochs=3, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", model=ModelConfig(max_length=16),
                score_batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


class Recorder(TrainerCallback):
    def __init__(self, stop_at=None, control=None):
        self.events, self.stop_at, self.control = [], stop_at, control

    def on_train_begin(self, trainer):
        self.events.append("train_begin")

    def on_epoch_begin(self, trainer, epoch, phase):
        self.events.append(f"epoch_begin:{epoch}:{phase}")

    def on_step_end(self, trainer, p):
        if not self.events[-1].startswith("step"):
            self.events.append("step")
        if self.stop_at and (p.epoch, p.step) == self.stop_at:
            self.control.stop()

    def on_epoch_end(self, trainer, report):
        self.events.append(f"epoch_end:{report.epoch}")

    def on_train_end(self, trainer, stopped):
        self.events.append(f"train_end:{stopped}")


def noisy(ds, rate=0.2, seed=0):
    """Flip a seeded random `rate` of the labels to the next class; originals become true labels."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.copy()
    flip = rng.choice(len(ds), size=round(rate * len(ds)), replace=False)
    labels[flip] = (labels[flip] + 1) % ds.num_classes
    return ds.with_labels(labels, ds.labels.copy())


def test_event_order_and_report_contents(tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    rec = Recorder()
    t = SelfMixTrainer(cfg(), train, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer, callbacks=[rec])
    reports = list(t.run())
    assert rec.events == [
        "train_begin",
        "epoch_begin:1:warmup", "step", "epoch_end:1",
        "epoch_begin:2:selfmix", "step", "epoch_end:2",
        "epoch_begin:3:selfmix", "step", "epoch_end:3",
        "train_end:False",
    ]
    assert [r.phase for r in reports] == ["warmup", "selfmix", "selfmix"]
    n = len(train)
    for r in reports:
        for name in ("loss", "norm_loss", "clean_prob", "predicted_label", "predicted_prob", "given_label"):
            assert getattr(r, name).shape == (n,)
        assert r.n_clean + r.n_noisy == n
        assert 0 <= r.test_accuracy <= 1 and r.test_macro_f1 is not None
        assert r.detection is not None and r.given_vs_true is not None
        assert r.given_vs_predicted.sum() == n and r.given_vs_predicted.shape == (3, 3)
        assert np.all((r.clean_prob >= 0) & (r.clean_prob <= 1))
        assert r.top3_label.shape == r.top3_prob.shape == (n, 3)  # the export's top-3 suggestions
        assert (r.top3_label[:, 0] == r.predicted_label).all()
        assert np.allclose(r.top3_prob[:, 0], r.predicted_prob) and (np.diff(r.top3_prob, axis=1) <= 1e-7).all()
        assert (np.sort(r.top3_label, axis=1) == np.arange(3)).all()  # 3 classes: all three, once each
    assert set(reports[0].losses) == {"ce"}
    assert set(reports[1].losses) == {"mix", "pseudo", "rdrop", "total"}
    assert reports[1].train_n_clean + reports[1].train_n_noisy == n
    assert all(np.isfinite(v) for r in reports for v in r.losses.values())


def test_stop_flag_ends_cleanly_between_batches(tiny_dataset, tiny_model_factory, tokenizer):
    control = TrainerControl()
    rec = Recorder(stop_at=(2, 2), control=control)
    t = SelfMixTrainer(cfg(), noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer,
                       callbacks=[rec], control=control)
    reports = list(t.run())
    assert [r.epoch for r in reports] == [1]
    assert rec.events[-1] == "train_end:True"
    assert t.state.epochs_done == 1


def test_ce_method_and_no_global_rng_side_effects(tiny_dataset, tiny_model_factory, tokenizer):
    torch.manual_seed(123)
    before = torch.get_rng_state().clone()
    t = SelfMixTrainer(cfg(method="ce", epochs=2), noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer)
    reports = list(t.run())
    assert [r.phase for r in reports] == ["ce", "ce"]
    assert torch.equal(before, torch.get_rng_state())


def test_same_seed_same_run(tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    runs = []
    for _ in range(2):
        t = SelfMixTrainer(cfg(epochs=2), train, model=tiny_model_factory(3), tokenizer=tokenizer)
        runs.append(list(t.run())[-1])
    assert np.array_equal(runs[0].clean_prob, runs[1].clean_prob)
    assert runs[0].losses == runs[1].losses


def test_resume_reproduces_uninterrupted_run(tmp_path, tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    full = SelfMixTrainer(cfg(), train, model=tiny_model_factory(3), tokenizer=tokenizer)
    full_reports = list(full.run())

    control = TrainerControl()
    first = SelfMixTrainer(cfg(), train, model=tiny_model_factory(3), tokenizer=tokenizer, control=control,
                           checkpoint_dir=tmp_path)
    for r in first.run():
        if r.epoch == 2:
            control.stop()
    assert first.state.epochs_done == 2
    # a fresh process: new model object with different init, resumed from disk
    resumed = SelfMixTrainer(cfg(), train, model=tiny_model_factory(3, seed=99), tokenizer=tokenizer,
                             checkpoint_dir=tmp_path, resume=True)
    assert resumed.state.epochs_done == 2
    assert resumed.resumed_report is not None and resumed.resumed_report.epoch == 2
    assert np.allclose(resumed.resumed_report.clean_prob, full_reports[1].clean_prob, atol=1e-5)
    rest = list(resumed.run())
    assert [r.epoch for r in rest] == [3]
    assert np.allclose(rest[0].clean_prob, full_reports[2].clean_prob, atol=1e-5)
    assert rest[0].losses == pytest.approx(full_reports[2].losses, rel=1e-4)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-003"]


def test_resume_refuses_other_data_of_the_same_size_and_classes(tmp_path, tiny_dataset, tiny_model_factory,
                                                                tokenizer):
    import dataclasses

    train = noisy(tiny_dataset)
    control = TrainerControl()
    first = SelfMixTrainer(cfg(), train, model=tiny_model_factory(3), tokenizer=tokenizer, control=control,
                           checkpoint_dir=tmp_path)
    for _ in first.run():
        control.stop()
    # one text edited, and (separately) two given labels swapped: same size, same classes
    edited = dataclasses.replace(train, texts=["edited " + train.texts[0]] + list(train.texts[1:]))
    swapped_labels = np.asarray(train.labels).copy()
    j = int(np.flatnonzero(swapped_labels != swapped_labels[0])[0])
    swapped_labels[[0, j]] = swapped_labels[[j, 0]]
    swapped = dataclasses.replace(train, labels=swapped_labels)
    for other in (edited, swapped):
        with pytest.raises(ValueError, match="different training data"):
            SelfMixTrainer(cfg(), other, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=tmp_path,
                           resume=True)
    # the same data resumes
    again = SelfMixTrainer(cfg(), noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer,
                           checkpoint_dir=tmp_path, resume=True)
    assert again.state.epochs_done == 1


def test_review_decisions_feed_next_epoch(tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    t = SelfMixTrainer(cfg(epochs=3), train, model=tiny_model_factory(3), tokenizer=tokenizer)
    it = t.run()
    first = next(it)
    wrong = int(np.flatnonzero(train.labels != train.true_labels)[0])
    gone = int(np.flatnonzero(train.labels == train.true_labels)[0])
    t.apply_decisions({gone: {"action": "drop"}, wrong: {"action": "relabel", "new_label": int(train.true_labels[wrong])}})
    second = next(it)
    assert not second.in_training[gone] and np.isnan(second.clean_prob[gone]) and not second.is_label_issue[gone]
    assert second.given_label[wrong] == train.true_labels[wrong]
    assert second.n_clean + second.n_noisy == len(train) - 1
    with pytest.raises(ValueError, match="unknown review action"):
        t.apply_decisions({1: {"action": "bogus"}})
    list(it)


def test_empty_u_falls_back_and_reports(tiny_dataset, tiny_model_factory, tokenizer):
    t = SelfMixTrainer(cfg(epochs=2), tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer)
    it = t.run()
    next(it)
    t.split.is_clean[:] = True  # force an all-clean split
    r = next(it)
    assert r.fallback and "U is empty" in r.fallback
    assert r.losses["pseudo"] == 0.0 and r.losses["rdrop"] == 0.0
    assert np.isfinite(r.losses["total"])


def test_empty_x_falls_back(tiny_dataset, tiny_model_factory, tokenizer):
    t = SelfMixTrainer(cfg(epochs=2), noisy(tiny_dataset, 0.4),
                       model=tiny_model_factory(3), tokenizer=tokenizer)
    it = t.run()
    next(it)
    t.split.is_clean[:] = False  # force an all-noisy split
    r = next(it)
    assert r.fallback and "X is empty" in r.fallback
    assert np.isfinite(r.losses["total"])


def test_warmup_samples_really_stops(tiny_dataset, tiny_model_factory, tokenizer):
    t = SelfMixTrainer(cfg(epochs=3, warmup_samples=20), noisy(tiny_dataset), model=tiny_model_factory(3),
                       tokenizer=tokenizer)
    reports = list(t.run())
    assert reports[0].phase == "warmup" and reports[0].samples_trained == 20
    assert [r.phase for r in reports[1:]] == ["selfmix", "selfmix"]


def test_warmup_extends_while_held_out_accuracy_improves(tiny_dataset, tiny_model_factory, tokenizer, monkeypatch):
    """The hand-over reads the held-out slice: while decision.warmup_should_continue says
    'still improving', warm-up epochs are added (up to extra_warmup_epochs), then SelfMix."""
    from selfmix_core import trainer as trainer_mod
    from selfmix_core.config import ValidationConfig

    calls = []

    def still_improving(history, baseline, n_val, min_gain, losses=None, min_loss_drop=0.0):
        calls.append((list(history), losses))
        return "the held-out agreement with the given labels still improves (synthetic)"

    monkeypatch.setattr(trainer_mod, "warmup_should_continue", still_improving)
    t = SelfMixTrainer(cfg(epochs=2, extra_warmup_epochs=2, validation=ValidationConfig(fraction=0.3)),
                       noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer)
    reports = list(t.run())
    assert [r.phase for r in reports] == ["warmup", "warmup", "warmup", "selfmix"]
    assert [len(h) for h, _ in calls] == [1, 2, 3]  # one held-out accuracy per warm-up epoch
    assert all(losses is None for _, losses in calls)  # the loss is not read by default (ValidationConfig.use_loss)
    assert any("warm-up continues" in w for w in reports[0].warnings)
    held = reports[0].in_validation
    assert held.sum() == reports[0].n_val == 18
    # the held-out samples are never trained on: not in X or U, but scored and flaggable
    assert reports[-1].train_n_clean + reports[-1].train_n_noisy == len(held) - held.sum()
    assert np.all(np.isfinite(reports[-1].clean_prob[held]))
    assert all(r.val_accuracy is not None and r.recommended_epoch is not None for r in reports)


@pytest.mark.parametrize("from_best", [False, True])
def test_handover_from_the_best_warmup_epoch(from_best, tiny_dataset, tiny_model_factory, tokenizer, monkeypatch):
    """validation.handover_from_best: the warm-up runs one epoch past its held-out peak (scripted
    here); SelfMix then starts from the peak epoch's weights and split, or (off) from the last's."""
    import selfmix_core.trainer as trainer_mod
    from selfmix_core.config import ValidationConfig

    accs = iter([0.5, 0.7, 0.6])  # held-out accuracy of warm-up epochs 1-3: the peak is epoch 2
    monkeypatch.setattr(trainer_mod, "warmup_should_continue",
                        lambda history, *a, **k: "still improving (synthetic)" if len(history) < 3 else None)
    t = SelfMixTrainer(cfg(epochs=2, warmup_epochs=1, extra_warmup_epochs=2,
                           validation=ValidationConfig(fraction=0.3, handover_from_best=from_best)),
                       noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer)
    real_build = t._build_report

    def scripted(*a, **k):
        report = real_build(*a, **k)
        if report.phase == "warmup":
            report.val_accuracy = next(accs)
        return report

    monkeypatch.setattr(t, "_build_report", scripted)
    weights, splits = {}, {}

    class Snap(TrainerCallback):
        def on_epoch_end(self, trainer, report):
            weights[report.epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
            splits[report.epoch] = report.clean_prob >= report.tau

    t.callbacks.append(Snap())
    it = t.run()
    reports = [next(it) for _ in range(3)]  # the three warm-up epochs, the hand-over after the third
    assert [r.phase for r in reports] == ["warmup"] * 3
    now = t.model.state_dict()
    assert all(torch.equal(now[k], weights[2][k]) for k in now) is from_best  # epoch 3 trained on from epoch 2
    assert np.array_equal(t.split.is_clean, splits[2] if from_best else splits[3])
    assert any("starts from epoch 2's weights" in w for w in reports[2].warnings) is from_best
    assert next(it).phase == "selfmix"


def test_no_held_out_slice_keeps_the_scheduled_warmup(tiny_dataset, tiny_model_factory, tokenizer):
    from selfmix_core.config import ValidationConfig

    t = SelfMixTrainer(cfg(epochs=3, extra_warmup_epochs=4, validation=ValidationConfig(fraction=0.0)),
                       noisy(tiny_dataset), model=tiny_model_factory(3), tokenizer=tokenizer)
    reports = list(t.run())
    assert [r.phase for r in reports] == ["warmup", "selfmix", "selfmix"]
    assert all(r.val_accuracy is None and not r.in_validation.any() for r in reports)
    assert reports[-1].recommended_epoch == 3  # no signal: the last epoch


def test_decisions_never_read_true_or_test_labels(tiny_dataset, tiny_model_factory, tokenizer):
    """Shuffling the true-label column (and the test labels) changes nothing the rule
    decides: the phases, the held-out accuracies, the recommended epoch, the flags."""
    from selfmix_core.config import ValidationConfig

    def run(true_labels, test):
        train = noisy(tiny_dataset)
        train = train.with_labels(train.labels.copy(), true_labels)
        t = SelfMixTrainer(cfg(epochs=3, extra_warmup_epochs=1, validation=ValidationConfig(fraction=0.3)),
                           train, test, model=tiny_model_factory(3), tokenizer=tokenizer)
        return list(t.run())

    rng = np.random.default_rng(5)
    a = run(tiny_dataset.labels.copy(), tiny_dataset)
    shuffled_test = tiny_dataset.with_labels(rng.permutation(tiny_dataset.labels))
    b = run(rng.permutation(tiny_dataset.labels), shuffled_test)
    assert [r.phase for r in a] == [r.phase for r in b]
    assert [r.val_accuracy for r in a] == [r.val_accuracy for r in b]
    assert [r.recommended_epoch for r in a] == [r.recommended_epoch for r in b]
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.clean_prob, rb.clean_prob)
    assert a[-1].test_accuracy != b[-1].test_accuracy or a[-1].detection != b[-1].detection  # the labels did differ


def test_mismatched_model_rejected(tiny_dataset, tiny_model_factory, tokenizer):
    with pytest.raises(ValueError, match="outputs"):
        SelfMixTrainer(cfg(), tiny_dataset, model=tiny_model_factory(4), tokenizer=tokenizer)


def test_out_of_memory_halves_micro_batch_and_continues(tiny_dataset, tiny_model_factory, tokenizer):
    model = tiny_model_factory(3)
    real_embed = model.embed

    def embed_with_small_memory(input_ids, attention_mask):
        if input_ids.shape[0] > 6:  # pretend the device holds at most 6 sequences at a time
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_embed(input_ids, attention_mask)

    model.embed = embed_with_small_memory
    t = SelfMixTrainer(cfg(epochs=2, batch_size=8, score_batch_size=16), noisy(tiny_dataset), model=model,
                       tokenizer=tokenizer)
    reports = list(t.run())
    assert [r.phase for r in reports] == ["warmup", "selfmix"]
    notices = [w for r in reports for w in r.warnings if "out of memory" in w]
    assert any("micro-batches" in w and "batch of 8" in w for w in notices)
    assert any("scoring batch halved" in w for w in notices)
    assert t._micro >= 2 and t._score_bs <= 6
    assert all(np.isfinite(v) for r in reports for v in r.losses.values())
    assert reports[0].samples_trained == len(tiny_dataset)


def test_micro_batches_reproduce_the_full_batch_gradient(tiny_dataset, tiny_model_factory, tokenizer):
    """Gradient accumulation with share weights equals the full-batch gradient (dropout off)."""
    grads = []
    for micro in (1, 4):
        model = tiny_model_factory(3)
        model.eval()  # no dropout, so the two computations must agree
        # fp32: bf16 rounds differently per micro-batch shape, which is not what this checks.
        t = SelfMixTrainer(cfg(speed=SpeedConfig(bf16_cpu=False)), tiny_dataset, model=model, tokenizer=tokenizer)
        t.model.train = lambda mode=True: t.model  # keep dropout off inside _optimise callers
        t._micro = micro
        t.optimizer = torch.optim.SGD(t.model.parameters(), lr=0.0)
        t._optimise((np.arange(12),), t._ce_losses)
        grads.append(t.model.head[0].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_the_seed_reproduces_a_run_whose_model_the_trainer_builds(tmp_path, tiny_dataset, tiny_model_dir):
    """No injected model: the trainer builds encoder + fresh head itself (CLI, app)."""
    import itertools

    global_states = itertools.count(1234)

    def run(seed):
        torch.manual_seed(next(global_states))  # a different global RNG state each time: must not matter
        config = cfg(epochs=2, seed=seed, model=ModelConfig(model=str(tiny_model_dir), max_length=16))
        trainer = SelfMixTrainer(config, noisy(tiny_dataset), tiny_dataset)
        reports = list(trainer.run())
        return reports[-1], torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])

    (r1, w1), (r2, w2), (r3, w3) = run(0), run(0), run(1)
    assert torch.equal(w1, w2)
    np.testing.assert_array_equal(r1.clean_prob, r2.clean_prob)
    assert not torch.equal(w1, w3)


def _selfmix_terms(trainer, monkeypatch, xb, ub):
    """Run one _selfmix_losses call with mixup off, recording what the loss terms saw."""
    from selfmix_core import trainer as trainer_mod

    seen = {}
    real_sce, real_kl, real_pl = trainer_mod.soft_cross_entropy, trainer_mod.rdrop_kl, trainer_mod.pseudo_label_loss

    def sce(logits, targets):
        seen["targets"] = targets.detach().clone()
        return real_sce(logits, targets)

    def kl(l1, l2, reduction="sum"):
        seen["logits"] = (l1.detach().clone(), l2.detach().clone())
        return real_kl(l1, l2, reduction=reduction)

    monkeypatch.setattr(trainer_mod, "soft_cross_entropy", sce)
    monkeypatch.setattr(trainer_mod, "rdrop_kl", kl)
    monkeypatch.setattr(trainer_mod, "pseudo_label_loss", real_pl)
    trainer.model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        _, comps = trainer._selfmix_losses(xb, ub, np.random.default_rng(0), torch.Generator().manual_seed(0))
    return seen, comps


def _sym_kl_rows(l1: torch.Tensor, l2: torch.Tensor) -> np.ndarray:
    p = torch.softmax(l1.double(), -1).numpy()
    q = torch.softmax(l2.double(), -1).numpy()
    return 0.5 * ((p * np.log(p / q)).sum(1) + (q * np.log(q / p)).sum(1))


def test_selfmix_terms_match_the_paper_by_hand(tiny_dataset, tiny_model_factory, tokenizer, monkeypatch):
    """Soft targets of U from a no-dropout pass, L_R summed over U (Eq. 16), L_P averaged
    over the two dropout passes (the authors' code); FastChoices restores the earlier ones."""
    from selfmix_core.config import FastChoices
    from selfmix_core.losses import sharpen

    xb, ub = np.arange(0, 6), np.arange(6, 14)
    t = SelfMixTrainer(cfg(mixup=False), tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer)
    seen, comps = _selfmix_terms(t, monkeypatch, xb, ub)
    t.model.eval()
    with torch.no_grad(), t._autocast():  # the run's precision (bf16 on a CPU that has it)
        enc = t._encode([tiny_dataset.texts[i] for i in ub])
        expected = sharpen(torch.softmax(t.model(**enc).float(), -1), t.config.temperature)
    torch.testing.assert_close(seen["targets"][len(xb):], expected, rtol=1e-5, atol=1e-6)
    l1, l2 = seen["logits"]
    assert not torch.allclose(l1, l2)  # two dropout passes really differ
    assert comps["rdrop"] == pytest.approx(_sym_kl_rows(l1, l2).sum(), rel=1e-4)

    def pl(logits):
        lp = torch.log_softmax(logits.double(), -1).numpy()
        return float(-lp.max(1).mean())

    assert comps["pseudo"] == pytest.approx(0.5 * (pl(l1) + pl(l2)), rel=1e-5)

    fast = SelfMixTrainer(cfg(mixup=False, fast=FastChoices.all()), tiny_dataset, model=tiny_model_factory(3),
                          tokenizer=tokenizer)
    seen_f, comps_f = _selfmix_terms(fast, monkeypatch, xb, ub)
    f1, f2 = seen_f["logits"]
    assert comps_f["rdrop"] == pytest.approx(_sym_kl_rows(f1, f2).mean(), rel=1e-4)
    assert comps_f["pseudo"] == pytest.approx(pl(f1), rel=1e-5)
    mean_targets = sharpen(0.5 * (torch.softmax(f1, -1) + torch.softmax(f2, -1)), fast.config.temperature)
    torch.testing.assert_close(seen_f["targets"][len(xb):], mean_targets, rtol=1e-5, atol=1e-6)


def test_selfmix_epoch_is_one_pass_over_x(tiny_dataset, tiny_model_factory, tokenizer):
    """The authors' loop: ceil(|X| / (batch/2)) steps; FastChoices.epoch_over_all: ceil(n / batch)."""
    from selfmix_core.config import FastChoices, ValidationConfig

    steps = {}

    class Steps(TrainerCallback):
        def __init__(self, key):
            self.key = key

        def on_step_end(self, trainer, p):
            if p.phase == "selfmix":
                steps[self.key] = p.steps_in_epoch

    reports = {}
    for key, fast in (("paper", FastChoices()), ("fast", FastChoices(epoch_over_all=True))):
        t = SelfMixTrainer(cfg(epochs=2, fast=fast, validation=ValidationConfig(fraction=0.0)), noisy(tiny_dataset),
                           model=tiny_model_factory(3), tokenizer=tokenizer, callbacks=[Steps(key)])
        reports[key] = list(t.run())
    n_x = reports["paper"][0].n_clean
    assert 0 < n_x < 60
    assert steps["paper"] == -(-n_x // 4)  # batch 8: 4 from X per step
    assert steps["fast"] == -(-60 // 8)
