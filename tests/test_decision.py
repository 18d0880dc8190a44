"""The label-free decision rule (selfmix_core/decision.py) on synthetic sequences, and
its held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from selfmix_core.config import ValidationConfig
from selfmix_core.decision import (
    MIN_VALIDATION,
    collapse_warning,
    held_out_metrics,
    majority_share,
    recommend_epoch,
    recommended_epoch,
    validation_split,
    warmup_should_continue,
)


def test_split_is_stratified_seeded_and_leaves_every_class_samples_to_train():
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])
    cfg = ValidationConfig(fraction=0.1)
    a = validation_split(labels, 4, cfg, np.random.default_rng(1))
    b = validation_split(labels, 4, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 100
    assert np.bincount(labels[a], minlength=4).tolist() == [50, 30, 15, 5]
    c = validation_split(labels, 4, cfg, np.random.default_rng(2))
    assert (a != c).any()


def test_split_caps_and_turns_off_on_small_data():
    labels = np.repeat(np.arange(3), 10_000)
    assert validation_split(labels, 3, ValidationConfig(fraction=0.2, max_samples=900),
                            np.random.default_rng(0)).sum() == 900
    small = np.repeat(np.arange(3), 20)  # 10% = 6 < MIN_VALIDATION
    assert not validation_split(small, 3, ValidationConfig(), np.random.default_rng(0)).any()
    assert not validation_split(labels, 3, ValidationConfig(fraction=0.0), np.random.default_rng(0)).any()
    # a class of 2 samples keeps both; 77 classes of 3 give one each at most
    many = np.repeat(np.arange(77), 3)
    m = validation_split(many, 77, ValidationConfig(fraction=0.3), np.random.default_rng(0))
    assert m.sum() >= MIN_VALIDATION and np.bincount(many[m], minlength=77).max() <= 1


def test_held_out_metrics_and_majority():
    pred = np.array([0, 1, 1, 2, 2])
    labels = np.array([0, 1, 2, 2, 0])
    loss = np.array([0.1, 0.2, 3.0, 0.3, 2.0])
    mask = np.array([True, True, True, False, True])
    h = held_out_metrics(pred, loss, labels, mask)
    assert h.accuracy == pytest.approx(0.5) and h.n == 4 and h.loss == pytest.approx(5.3 / 4)
    assert held_out_metrics(pred, loss, labels, np.zeros(5, bool)) is None
    assert majority_share(labels, mask) == pytest.approx(0.5)


def test_late_learning_run_keeps_warming_up_then_hands_over():
    """Banking77-like: CE still improving on the held-out given labels after each epoch."""
    history = []
    decisions = []
    for acc in [0.12, 0.31, 0.48, 0.60, 0.66, 0.665]:
        history.append(acc)
        decisions.append(bool(warmup_should_continue(history, baseline=0.02, n_val=200, min_gain=0.005)))
    # up to 0.66 every epoch gains more than 0.5 points and one sample; 0.665 gains one sample
    # (0.005 = 1/200) only, which is not more than the step: hand over there.
    assert decisions == [True, True, True, True, True, False]


def test_rule_needs_one_sample_of_gain_on_small_slices():
    assert not warmup_should_continue([0.50, 0.505], 0.2, n_val=100, min_gain=0.001)
    assert warmup_should_continue([0.50, 0.52], 0.2, n_val=100, min_gain=0.001)
    assert warmup_should_continue([0.30], 0.25, n_val=100, min_gain=0.005)  # vs. the majority baseline
    assert not warmup_should_continue([0.25], 0.25, n_val=100, min_gain=0.005)
    with pytest.raises(ValueError):
        warmup_should_continue([], 0.2, 100, 0.01)


def test_a_falling_held_out_loss_keeps_the_warm_up_going_when_accuracy_jumps_by_chance():
    """TREC-1,000 seed 1 (40% asym): held-out accuracy 41% -> 52% -> 45% while its loss fell
    1.561 -> 1.065 -> 0.997 and test accuracy rose 40% -> 46% -> 58%."""
    acc, loss = [0.41, 0.52, 0.45], [1.561, 1.065, 0.997]
    assert warmup_should_continue(acc, 0.25, 100, 0.005) is None  # accuracy alone hands over
    why = warmup_should_continue(acc, 0.25, 100, 0.005, loss, min_loss_drop=0.01)
    assert why and "loss" in why and "1.065 -> 0.997" in why
    # memorising: the loss rises again, accuracy flat: hand over
    assert warmup_should_continue([0.5, 0.55, 0.55], 0.25, 100, 0.005, [1.2, 1.0, 1.05], 0.01) is None
    # a fall smaller than min_loss_drop is not learning
    assert warmup_should_continue([0.5, 0.5], 0.25, 100, 0.005, [1.0, 0.995], 0.01) is None


def test_collapsing_run_recommends_the_epoch_before_the_collapse_and_warns():
    """The TREC/Banking77 failure shape: good after warm-up, falling under SelfMix."""
    accs = {1: 0.45, 2: 0.62, 3: 0.40, 4: 0.21, 5: 0.08}
    epoch, why = recommend_epoch(accs)
    assert epoch == 2 and "epoch 2" in why and "62.0%" in why
    w = collapse_warning(accs)
    assert w is not None and "collapsing" in w and "epoch 2" in w
    assert collapse_warning({1: 0.5, 2: 0.45}) is None  # a 5-point dip is not a collapse


def test_recommendation_prefers_the_latest_of_equals_and_the_last_without_signal():
    assert recommend_epoch({1: 0.7, 2: 0.8, 3: 0.8})[0] == 3
    epoch, why = recommend_epoch({1: None, 2: None, 3: None})
    assert epoch == 3 and "no held-out" in why
    assert recommend_epoch({1: 0.5, 2: float("nan"), 3: None})[0] == 1
    with pytest.raises(ValueError):
        recommend_epoch({})


def test_prediction_warnings_catch_concentrated_predictions_and_mass_flags():
    from selfmix_core.decision import prediction_warnings

    given = np.repeat(np.arange(8), 10)
    healthy = prediction_warnings(given.copy(), given, np.zeros(80, bool), 8)
    assert healthy == []
    collapsed = prediction_warnings(np.repeat([0, 1, 2], [30, 30, 20]), given, np.r_[np.ones(50, bool),
                                    np.zeros(30, bool)], 8)
    assert len(collapsed) == 2
    assert "only 3 of the 8 classes" in collapsed[0] and "62% of the samples are flagged" in collapsed[1]
    early = prediction_warnings(np.repeat([0, 1, 2], [30, 30, 20]), given, np.zeros(80, bool), 8, phase="warmup")
    assert len(early) == 1 and "not learned every class yet" in early[0] and "collapsed" not in early[0]
    # two classes predicted of three is not a collapse signal (too few classes to tell)
    assert prediction_warnings(np.zeros(6, int), np.array([0, 1, 2, 0, 1, 2]), np.zeros(6, bool), 3) == []


# ---- decision.recommended_epoch: read back from a run's stored epoch summaries -------------


def summary(epoch, val=None, rec=None, why=None, old=False):
    s = {"epoch": epoch, "phase": "selfmix", "n_clean": 10, "n_noisy": 2}
    if not old:
        s.update(val_accuracy=val, n_val=20, recommended_epoch=rec, recommendation=why)
    return s


def test_reads_the_latest_summarys_recommendation():
    s = [summary(1, 0.6, 1, "one"), summary(2, 0.8, 2, "two"), summary(3, 0.7, 2, "epoch 2 agrees best")]
    assert recommended_epoch(s) == (2, "epoch 2 agrees best")
    assert recommended_epoch(list(reversed(s))) == (2, "epoch 2 agrees best")  # any order: the latest epoch's
    assert recommended_epoch(s[:1]) == (1, "one")


def test_old_runs_without_the_key_fall_back_to_the_last_epoch_with_a_reason():
    epoch, why = recommended_epoch([summary(1, old=True), summary(2, old=True)])
    assert epoch == 2 and "last" in why and "held-out" in why
    epoch, why = recommended_epoch([summary(1), summary(2)])  # keys present, no held-out slice
    assert epoch == 2 and "last" in why


def test_without_a_saved_recommendation_the_held_out_accuracies_decide():
    s = [summary(1, 0.9), summary(2, 0.7)]
    assert recommended_epoch(s) == recommend_epoch({1: 0.9, 2: 0.7})
    assert recommended_epoch(s)[0] == 1


def test_a_recommended_epoch_that_is_not_saved_falls_back_to_the_last():
    epoch, why = recommended_epoch([summary(2, rec=1, why="epoch 1 agrees best")])
    assert epoch == 2 and "not saved" in why


def test_a_missing_reason_gets_one_and_no_summaries_is_an_error():
    epoch, why = recommended_epoch([summary(1, 0.5), summary(2, 0.6, rec=1)])
    assert epoch == 1 and why.startswith("epoch 1")
    with pytest.raises(ValueError):
        recommended_epoch([])


def _run(rows, seed=0):
    """A benchmark cell with per-epoch rows (epoch, phase, val_accuracy, val_loss, separation, auroc, test acc)."""
    epochs = [{"epoch": i + 1, "phase": ph, "val_accuracy": va, "val_loss": vl, "n_val": 100,
               "gmm": {"separation": sep}, "detection_auroc": auc, "test_accuracy": acc}
              for i, (ph, va, vl, sep, auc, acc) in enumerate(rows)]
    return {"cell": {"method": "selfmix", "seed": seed}, "epochs": epochs, "config": {"fast": {}, "validation": {}}}


def test_label_free_signals_pick_their_epoch_and_are_judged_by_the_gap():
    """trust.signal_scores: each signal's pick, and `close` = picks within 0.02 of the run's best AUROC."""
    from selfmix_core.benchmark.trust import SIGNALS, signal_scores

    peaked = _run([("warmup", 0.50, 1.0, 1.0, 0.70, 0.60), ("warmup", 0.60, 0.9, 1.2, 0.80, 0.70),
                   ("selfmix", 0.65, 1.1, 1.5, 0.90, 0.80), ("selfmix", 0.55, 1.2, 1.9, 0.75, 0.65)])
    late = _run([("warmup", 0.50, 0.8, 1.0, 0.70, 0.60), ("selfmix", 0.55, 1.0, 1.4, 0.80, 0.70),
                 ("selfmix", 0.55, 1.3, 1.8, 0.95, 0.90)], seed=1)
    picks = {name: (pick(peaked), pick(late)) for name, pick in SIGNALS.items()}
    assert picks["highest held-out accuracy (the rule)"] == (3, 3)  # the latest of a tie
    assert picks["lowest held-out loss"] == (2, 1)
    assert picks["widest GMM separation"] == (4, 3)
    assert picks["the hand-over (the first split SelfMix trains on)"] == (2, 1)
    assert picks["the last epoch"] == (4, 3)
    scores = signal_scores([peaked, late])
    assert scores["highest held-out accuracy (the rule)"] == {"close": 2, "n": 2, "auroc": pytest.approx(0.925),
                                                             "accuracy": pytest.approx(0.85)}
    assert scores["the last epoch"]["close"] == 1 and scores["lowest held-out loss"]["close"] == 0
    # the signals read no label: shuffling the judged columns changes no pick
    for c in (peaked, late):
        for e in c["epochs"]:
            e["detection_auroc"], e["test_accuracy"] = 0.5, 0.5
    assert {name: (pick(peaked), pick(late)) for name, pick in SIGNALS.items()} == picks


def test_trust_collect_can_take_only_some_methods_of_a_folder(tmp_path):
    """"runs/X:cl" adds only X's cleanlab cells (a rerun at the authors' settings), replacing the
    earlier folder's, and leaves the earlier CE cells in place."""
    import json

    from selfmix_core.benchmark.trust import cl_description, collect

    def cell(folder, method, folds):
        c = {"cell": {"dataset": "trec", "noise": "asym", "rate": 0.4, "method": method, "seed": 0},
             "n_train": 1000, "config": {}, "extras": {"cv_folds": folds, "cv_epochs": 3} if method == "cl" else {},
             "settings": {}, "epochs": [], "folder": folder}
        (tmp_path / folder / "cells").mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "cells" / f"{method}.json").write_text(json.dumps(c))

    cell("old", "ce", 3), cell("old", "cl", 3), cell("new", "ce", 5), cell("new", "cl", 5)
    data = collect([tmp_path / "old", f"{tmp_path / 'new'}:cl"])
    (setting,) = data
    assert data[setting]["cl"][0]["extras"]["cv_folds"] == 5
    assert data[setting]["ce"][0]["folder"] == "old"
    assert cl_description(data) == "5-fold cross-validated probabilities (3 epochs per fold)"
    assert collect([tmp_path / "old", tmp_path / "new"])[setting]["cl"][0]["extras"]["cv_folds"] == 5


def test_goal_rows_judge_each_goal_and_leave_what_cannot_be_judged_as_none():
    """The trust guide lists settings by goal from goal_rows: met is True, missed False, and a goal without
    the cells it compares against (no cleanlab, one seed) None, never counted as missed."""
    from selfmix_core.benchmark.trust import goal_rows, goals

    def cell(last, best, aucs, val=None):
        epochs = [{"epoch": i + 1, "test_accuracy": best, "detection_auroc": a,
                   "val_accuracy": None if val is None else val[i], "phase": "selfmix"} for i, a in enumerate(aucs)]
        return {"last_test_accuracy": last, "best_test_accuracy": best, "epochs": epochs, "extras": {}}

    data = {"A": {"ce": {0: cell(0.60, 0.70, [0.5]), 1: cell(0.62, 0.72, [0.5])},
                  "cl": {0: {"extras": {"quality_auroc": 0.75}}},
                  # held-out accuracy peaks at epoch 2, whose AUROC (0.85) is within 0.02 of the best (0.86)
                  "selfmix": {0: cell(0.75, 0.80, [0.70, 0.85, 0.86], val=[0.5, 0.9, 0.8]),
                              1: cell(0.63, 0.80, [0.70, 0.90, 0.60], val=[0.9, 0.5, 0.5])}},
            "B": {"selfmix-paper": {0: cell(0.5, 0.5, [0.6])}}}
    a, b = goal_rows(data)
    assert (a["setting"], a["method"], a["wins"], a["paired"], a["g1_seeds"]) == ("A", "selfmix", 2, 2, True)
    assert a["g1_mean"] is False and abs(a["last_mean"] - 69.0) < 1e-9 and abs(a["ce_best"] - 71.0) < 1e-9
    assert a["g2"] is False and a["last_std"] > 5
    assert (a["close"], a["n_close"]) == (1, 2)
    assert a["g3_cl"] is True and abs(a["rec_auc"] - (0.85 + 0.70) / 2) < 1e-9
    assert (b["g1_seeds"], b["g1_mean"], b["g2"], b["g3_cl"]) == (None, None, None, None)
    table, tally = goals(data)
    assert tally["selfmix"]["g3_cl"] == [1, 1] and tally["selfmix-paper"]["g2"] == [0, 0]
    assert "| A | `selfmix` | 2 | 2 of 2 | 69.0 vs 71.0 missed |" in table
