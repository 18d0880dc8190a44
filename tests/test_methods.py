"""Every benchmark method: 2 epochs on tiny data with the tiny random BERT, well-formed reports."""

import numpy as np
import pytest
import torch

from selfmix_core.config import ModelConfig, TrainConfig
from selfmix_core.benchmark.methods import GROUPS, METHODS, get_method, ranked_clean_prob, run_method
from selfmix_core.benchmark.methods.coteaching import GRADUAL_EPOCHS, CoTeachingTrainer, forget_rate, small_loss_keep
from selfmix_core.benchmark.methods.cores2 import cores_terms
from selfmix_core.benchmark.methods.nmnet import TRANSITION_LR, NoiseModel, predicted_given_transition
from selfmix_core.benchmark.methods.sce import sce_loss
from selfmix_core.reports import EpochReport


def cfg(**kw):
    base = dict(epochs=2, warmup_epochs=1, batch_size=8, lr=1e-3, device="cpu", model=ModelConfig(max_length=16),
                score_batch_size=32)
    base.update(kw)
    return TrainConfig(**base)


def noisy(ds, rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    labels = ds.labels.copy()
    flip = rng.choice(len(ds), size=round(rate * len(ds)), replace=False)
    labels[flip] = (labels[flip] + 1) % ds.num_classes
    return ds.with_labels(labels, ds.labels.copy())


@pytest.mark.parametrize("name", list(METHODS))
def test_method_yields_well_formed_reports(name, tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    method = get_method(name, **({"cv_folds": 2, "cv_epochs": 1} if name == "cl" else {}))
    torch.manual_seed(7)
    before = torch.get_rng_state().clone()
    reports = list(method.run(train, tiny_dataset, cfg(), tiny_model_factory, tokenizer, noise_rate=0.3))
    assert torch.equal(before, torch.get_rng_state()), "a method touched the global torch RNG"
    assert [r.epoch for r in reports] == [1, 2]
    n = len(train)
    for r in reports:
        assert isinstance(r, EpochReport)
        for field in ("given_label", "loss", "clean_prob", "predicted_label", "predicted_prob", "in_training"):
            assert getattr(r, field).shape == (n,), field
        assert np.all((r.clean_prob >= 0) & (r.clean_prob <= 1))
        assert r.n_clean + r.n_noisy == n
        assert 0.0 <= r.test_accuracy <= 1.0
        assert r.detection is not None and r.given_vs_true is not None
        assert r.losses and all(np.isfinite(v) for v in r.losses.values())
        r.scalars_dict(), r.arrays_bytes()  # serialisable like any trainer report
        assert EpochReport.from_parts(r.scalars_dict(), r.arrays_bytes()).epoch == r.epoch
    # the extras a cell records say whether the method ran at its authors' settings (here
    # only CL departs: 2 folds x 1 epoch instead of 5 x 3)
    cell = {"cell": {"method": name}, "settings": {"warmup_epochs": 1, "lr": 1e-3}, "extras": method.extras}
    why = METHODS[name].departs_from_authors(cell)
    assert (why is not None) == (name == "cl"), why
    if name == "cl":
        assert why.startswith("2 folds x 1 CV epochs")
        assert {"cv_seconds", "n_issues", "quality_auroc", "flag_precision"} <= set(method.extras)
        assert reports[-1].n_noisy == method.extras["n_issues"]
    if name == "sce":  # the authors' script: 0.4 CE + 1.0 RCE (0.1 is the CIFAR-10 alpha)
        assert method.extras == {"alpha": 0.4, "beta": 1.0}
        for r in reports:  # the epoch means of the objective and its two terms
            assert r.losses["loss"] == pytest.approx(0.4 * r.losses["ce"] + 1.0 * r.losses["rce"], rel=1e-4)
    if name in ("co-teaching", "co-teaching-plus"):
        # T_k = 4 (the authors' num_gradual), not the config's warm-up (1 here): epoch 1
        # forgets nothing, epoch 2 a third of the rate, whatever the warm-up
        assert method.extras["gradual_epochs"] == 4
        for r in reports:
            assert r.n_noisy == round(forget_rate(r.epoch, 0.3, 4) * r.in_training.sum()), r.epoch


def test_same_seed_same_result(tiny_dataset, tiny_model_factory, tokenizer):
    train = noisy(tiny_dataset)
    runs = [list(run_method("co-teaching", train, None, cfg(), tiny_model_factory, tokenizer, noise_rate=0.3))[-1]
            for _ in range(2)]
    assert np.array_equal(runs[0].clean_prob, runs[1].clean_prob)
    assert runs[0].losses == runs[1].losses


def test_registry_and_errors(tiny_dataset, tiny_model_factory, tokenizer):
    assert set(GROUPS["paper"]) <= set(METHODS) and set(GROUPS["ablations"]) <= set(METHODS)
    assert "WITHOUT the semi-supervised phase" in METHODS["cores2"].summary  # the tables say what is missing
    with pytest.raises(ValueError, match="unknown method"):
        get_method("bogus")
    with pytest.raises(ValueError, match="noise rate"):
        list(run_method("co-teaching", tiny_dataset, None, cfg(), tiny_model_factory, tokenizer))
    with pytest.raises(ValueError, match="tokenizer"):
        run_method("ce", tiny_dataset, None, cfg(), tiny_model_factory, None)


def test_ranked_clean_prob_keeps_flags_and_order():
    s = np.array([0.1, 5.0, 3.0, 0.2, 4.0])
    flagged = np.array([False, True, False, False, True])
    p = ranked_clean_prob(s, flagged, 0.5)
    assert np.array_equal(p < 0.5, flagged)
    assert p[1] < p[4] < 0.5 <= p[2] < p[3] < p[0]
    with pytest.raises(ValueError):
        ranked_clean_prob(s, flagged[:3], 0.5)


def test_forget_rate_schedule_and_small_loss():
    assert [forget_rate(e, 0.4, 2) for e in (1, 2, 3)] == [0.0, 0.4, 0.4]
    # the authors' schedule (num_gradual=4): the full rate from epoch 4 on, not from epoch 2
    assert GRADUAL_EPOCHS == 4
    assert [forget_rate(e, 0.4, GRADUAL_EPOCHS) for e in range(1, 7)] == pytest.approx(
        [0.0, 0.4 / 3, 0.8 / 3, 0.4, 0.4, 0.4])
    assert forget_rate(1, 0.4, 0) == 0.4
    keep = small_loss_keep(torch.tensor([3.0, 1.0, 2.0, 0.5]), 0.5)
    assert sorted(keep.tolist()) == [1, 3]
    with pytest.raises(ValueError):
        forget_rate(1, 1.0, 2)


def test_cl_defaults_are_the_authors(monkeypatch, tiny_dataset, tiny_model_factory, tokenizer):
    # cleanlab's default 5 folds and the authors' 3 CV epochs, whatever the config's warm-up;
    # the harness passes the same defaults and keeps both as settings.
    import selfmix_core.benchmark.methods.confident_learning as cl_module
    from selfmix_core.benchmark.harness import BenchSettings

    class Stop(Exception):
        pass

    seen = {}

    def fake_cv(train, config, model_factory, tokenizer, folds, epochs, control=None):
        seen.update(folds=folds, epochs=epochs)
        raise Stop  # before any training

    monkeypatch.setattr(cl_module, "cross_val_pred_probs", fake_cv)
    with pytest.raises(Stop):
        list(get_method("cl").run(noisy(tiny_dataset), None, cfg(warmup_epochs=1), tiny_model_factory, tokenizer))
    assert seen == {"folds": 5, "epochs": 3}
    with pytest.raises(Stop):
        list(get_method("cl", cv_folds=2, cv_epochs=1).run(noisy(tiny_dataset), None, cfg(), tiny_model_factory,
                                                            tokenizer))
    assert seen == {"folds": 2, "epochs": 1}
    assert (BenchSettings().cv_folds, BenchSettings().cv_epochs) == (5, 3)
    with pytest.raises(ValueError, match="cv_epochs"):
        BenchSettings(cv_epochs=0)


def test_co_teaching_cross_update_uses_the_peers_choice():
    # Each network's loss (and gradient) covers the small-loss samples chosen by the OTHER network.
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    l1 = torch.tensor([[3.0, 0, 0], [0, 3, 0], [0, 0, 3], [0, 3, 0], [0, 0, 3], [3, 0, 0]], requires_grad=True)
    l2 = torch.tensor([[0.0, 3, 0], [0, 0, 3], [0, 0, 3], [3, 0, 0], [0, 3, 0], [3, 0, 0]], requires_grad=True)
    ce1 = torch.nn.functional.cross_entropy(l1, y, reduction="none").detach()
    ce2 = torch.nn.functional.cross_entropy(l2, y, reduction="none").detach()
    keep1, keep2 = set(small_loss_keep(ce1, 0.5).tolist()), set(small_loss_keep(ce2, 0.5).tolist())
    assert keep1 == {0, 1, 2} and keep2 == {2, 3, 4} and keep1 != keep2  # the two choices differ
    total, comps = CoTeachingTrainer._cross_update(l1, l2, y, 0.5)
    assert comps["ce1"] == pytest.approx(float(ce1[sorted(keep2)].mean()), rel=1e-6)
    assert comps["ce2"] == pytest.approx(float(ce2[sorted(keep1)].mean()), rel=1e-6)
    total.backward()
    assert set(np.flatnonzero(l1.grad.abs().sum(1).numpy())) == keep2
    assert set(np.flatnonzero(l2.grad.abs().sum(1).numpy())) == keep1


class OracleClassifier(torch.nn.Module):
    """Logits = 8 x (count of each class's words in the text): p is (almost) the one-hot TRUE
    class and stays so (one scalar weight, trained at a tiny lr), so what an NM-Net run
    learns of its transition layer is the noise alone."""

    def __init__(self, tokenizer, label_names):
        super().__init__()
        from tests.conftest import NAMES, WORDS

        self.num_labels = len(label_names)
        table = torch.zeros(tokenizer.vocab_size, self.num_labels)
        for k, words in WORDS.items():
            for w in words:
                table[tokenizer(w, add_special_tokens=False)["input_ids"], list(label_names).index(NAMES[k])] = 1.0
        self.register_buffer("table", table)
        self.scale = torch.nn.Parameter(torch.tensor(8.0))

    def forward(self, input_ids, attention_mask):
        return self.scale * (self.table[input_ids] * attention_mask[..., None]).sum(1).clamp(max=1.0)


def realised_transition(true, given, k):
    t = np.zeros((k, k))
    np.add.at(t, (true, given), 1)
    return t / t.sum(1, keepdims=True)


@pytest.mark.parametrize("init", ["identity", "confusion"])
def test_nm_net_transition_learns_a_known_noise(init, tokenizer):
    # Asymmetric noise y -> y + 1 on 30% of 240 texts: T[true, noisy] is known. The encoder's
    # lr is the benchmark's 5e-5, so a transition layer in the shared Adam group would stay
    # at its 0.9-diagonal start (max error about 0.3); its own group (3e-2) learns T.
    from selfmix_core.data import dataset_from_frame
    from tests.conftest import make_frame

    ds = dataset_from_frame(make_frame(240), source="tiny")
    train = noisy(ds, rate=0.3)
    known = realised_transition(ds.labels, train.labels, 3)
    method = get_method("nm-net", transition_init=init)
    config = cfg(epochs=6, lr=5e-5, extra_warmup_epochs=0)
    start = None
    for r in method.run(train, None, config, lambda k, seed=0: OracleClassifier(tokenizer, ds.label_names),
                           tokenizer):
        if r.epoch == 1:  # the start, as set at the end of warm-up
            start = np.array(method.extras["transition"])
    learned = np.array(method.extras["transition"])
    assert method.extras["transition_lr"] == TRANSITION_LR
    if init == "identity":
        assert np.abs(start - known).max() > 0.25  # 0.9 on the diagonal
    else:  # P(given | predicted) of the warm-up, predictions right: the known T already
        assert np.abs(start - known).max() < 0.05
    assert np.abs(learned - known).max() < 0.1, learned.round(3)


def test_noise_model_pieces():
    # the warm-up estimate: rows the predicted class, columns the given label
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    t = predicted_given_transition(probs, np.array([0, 1, 1, 0]), 2)
    assert t == pytest.approx(np.array([[1.5 / 2.5, 1.0 / 2.5], [0.5 / 1.5, 1.0 / 1.5]]))
    assert predicted_given_transition(probs[:2], np.array([0, 1]), 2) is None  # class 1 never predicted
    nm = NoiseModel(2)
    assert nm.transition().detach().numpy() == pytest.approx(np.array([[0.9, 0.1], [0.1, 0.9]]), rel=1e-5)
    nm.set_transition(np.array([[0.7, 0.3], [0.0, 1.0]]))
    assert nm.transition().detach().numpy() == pytest.approx(np.array([[0.7, 0.3], [1e-3 / 1.001, 1 / 1.001]]),
                                                             rel=1e-5)
    p = torch.tensor([[1.0, 0.0], [0.2, 0.8]])
    y = torch.tensor([1, 1])
    q = (p @ nm.transition()).detach()
    assert float(nm.loss(p, y).detach()) == pytest.approx(float(-torch.log(q[[0, 1], [1, 1]]).mean()), rel=1e-6)
    with pytest.raises(ValueError, match="transition_init"):
        list(get_method("nm-net", transition_init="bogus").run(None, None, cfg(), None, None))


def test_loss_formulas_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    y = torch.tensor([0])
    p = torch.softmax(logits, -1)[0]
    loss, comps = sce_loss(logits, y, alpha=0.1, beta=1.0)
    rce = -float(torch.log(torch.tensor(1e-4))) * float(p[1] + p[2])  # -sum_k p_k log q_k, q clamped at 1e-4
    assert comps["rce"] == pytest.approx(rce, rel=1e-5)
    assert float(loss) == pytest.approx(0.1 * -float(torch.log(p[0])) + rce, rel=1e-5)
    reg, sieve = cores_terms(logits, y, torch.tensor([0.5, 0.25, 0.25]), beta=2.0)
    l = -torch.log(p + 1e-8)
    assert float(reg) == pytest.approx(float(l[0] - 2.0 * (0.5 * l[0] + 0.25 * l[1] + 0.25 * l[2])), rel=1e-5)
    assert float(sieve) == pytest.approx(float(l[0] - l.mean()), rel=1e-5)
    assert float(sieve) < 0  # a confident correct prediction passes the sieve


@pytest.mark.parametrize("name, why", [
    ("co-teaching", "forget rate ramped over 2 epochs (the authors' num_gradual: 4)"),
    ("co-teaching-plus", "forget rate ramped over 2 epochs (the authors' num_gradual: 4)"),
    ("sce", "alpha 0.1, beta 1 (the authors' script: 0.4, 1)"),
    ("nm-net", "transition layer in the encoder's Adam group at lr 5e-05, where it barely moves"),
    ("cl", "3 folds x 2 CV epochs (cleanlab's default 5 folds, the authors' 3 epochs)"),
    ("elr", None), ("cores2", None), ("ce", None), ("selfmix", None),
])
def test_cells_from_before_the_authors_settings_are_named(name, why):
    """A cell made before issue #12 recorded no ramp, alpha or transition lr (CL: 3 folds of the
    warm-up's 2 epochs); the tables mark exactly those, with what differed."""
    extras = {"cv_folds": 3, "cv_epochs": 2} if name == "cl" else {}
    cell = {"cell": {"method": name}, "settings": {"warmup_epochs": 2, "lr": 5e-5}, "extras": extras}
    assert METHODS[name].departs_from_authors(cell) == why
