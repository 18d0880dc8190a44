"""selfmix_core.decision.recommended_epoch: the recommended epoch read back from a run's
stored epoch summaries, old runs (no recommendation saved) included."""

from __future__ import annotations

import pytest

from selfmix_core.decision import recommend_epoch, recommended_epoch


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
