"""The epoch picker of the Review and Export pages and the recommended epoch on the Train
page, through AppTest with stored epoch reports whose recommended epoch is not the last:
the picker opens on the recommended epoch, picking another changes the flagged rows
shown and exported, an explicit choice is kept while a run adds epochs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from selfmix_core.config import TrainConfig
from selfmix_core.reports import EpochReport, GMMParams
from selfmix_core.store import Store
from tests.test_app_pages import NAMES, PAGES, add_tiny_dataset, captured_downloads, joined, open_app  # noqa: F401

N = 40
VAL = {1: 0.60, 2: 0.80, 3: 0.70, 4: 0.90, 5: 0.95}  # held-out accuracy per epoch: epoch 2 beats 3


def clean_prob(epoch: int) -> np.ndarray:
    """Epoch 1 suspects samples 0..19 (0 first), epoch 2 samples 39..20 (39 first), epoch 3
    samples 30..39 then 0..9 (30 first), epoch 4 samples 10..29 (10 first), epoch 5 samples
    20..39 (20 first)."""
    i = np.arange(N)
    shift = {1: i, 2: N - 1 - i, 3: (i + 10) % N, 4: (i + 30) % N, 5: (i + 20) % N}[epoch]
    return shift / N


def save_epoch(store: Store, run_id: str, epoch: int) -> None:
    """Epoch `epoch`'s report, its recommendation computed from VAL as the trainer does."""
    from selfmix_core.decision import recommend_epoch

    frame = store.load_dataset_frame(store.get_run(run_id)["dataset_id"])
    given = np.array([NAMES.index(v) for v in frame["label"]])
    clean = clean_prob(epoch)
    rec, why = recommend_epoch({e: VAL[e] for e in range(1, epoch + 1)})
    store.save_epoch_report(run_id, EpochReport(
        epoch=epoch, phase="warmup" if epoch == 1 else "selfmix", seconds=float(epoch), train_seconds=0.5,
        score_seconds=0.5, samples_trained=N, losses={"ce": 1.0}, given_label=given, loss=1 - clean,
        norm_loss=1 - clean, clean_prob=clean, predicted_label=(given + epoch) % 3, predicted_prob=np.full(N, 0.8),
        in_training=np.ones(N, bool), gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5,
        n_clean=N // 2, n_noisy=N // 2, given_vs_predicted=np.eye(3, dtype=np.int64), val_accuracy=VAL[epoch],
        n_val=10, recommended_epoch=rec, recommendation=why))


def run_with_epochs(store: Store, epochs: int = 3) -> str:
    ds = add_tiny_dataset(store, n=N)
    run_id = store.create_run(ds, TrainConfig(epochs=5, warmup_epochs=1), name="picker")
    for e in range(1, epochs + 1):
        save_epoch(store, run_id, e)
    store.set_run_status(run_id, "finished")
    return run_id


def first_samples(at, k: int = 3) -> list[int]:
    return [int(v) for v in at.dataframe[0].value["sample"][:k]]


def test_review_picker_defaults_to_the_recommended_epoch_and_picking_another_changes_the_rows(store):
    run_id = run_with_epochs(store)
    at = open_app("review")
    picker = at.selectbox(key="review_epoch")
    assert picker.value == 2 and list(picker.options) == ["epoch 1", "epoch 2 (recommended)", "epoch 3 (last)"]
    assert first_samples(at) == [39, 38, 37]  # epoch 2's most suspicious first
    assert "Showing epoch 2 of run" in joined(at) and "epoch 2 agrees best (80.0%)" in joined(at)
    picker.set_value(3).run()
    assert not at.exception and at.selectbox(key="review_epoch").value == 3
    assert first_samples(at) == [30, 31, 32]
    assert "Showing epoch 3 of run" in joined(at)
    # the choice stays while the person works (a filter) and on the Export page
    at.toggle(key="review_undecided").set_value(True).run()
    assert at.selectbox(key="review_epoch").value == 3 and first_samples(at) == [30, 31, 32]
    at.switch_page(PAGES["export"]).run()
    assert at.selectbox(key="export_epoch").value == 3
    at.switch_page(PAGES["review"]).run()
    assert at.selectbox(key="review_epoch").value == 3 and first_samples(at) == [30, 31, 32]
    # decisions are made on the picked epoch's rows
    [keep] = [b for b in at.button if (b.key or "").startswith("review_one_keep_")]
    keep.click().run()
    assert not at.exception and list(store.current_decisions(run_id)) == [30]
    assert at.selectbox(key="review_epoch").value == 3


def test_a_new_recommendation_is_followed_unless_the_person_picked_an_epoch(store):
    run_id = run_with_epochs(store, epochs=2)
    at = open_app("review")
    assert at.selectbox(key="review_epoch").value == 2
    save_epoch(store, run_id, 3)  # still training: epoch 3 does not beat epoch 2
    at.run()
    assert at.selectbox(key="review_epoch").value == 2
    save_epoch(store, run_id, 4)  # epoch 4 is recommended now: an untouched picker follows
    at.run()
    assert at.selectbox(key="review_epoch").value == 4 and first_samples(at) == [10, 11, 12]
    at.selectbox(key="review_epoch").set_value(1).run()
    assert first_samples(at) == [0, 1, 2]
    save_epoch(store, run_id, 5)  # epoch 5 is recommended now
    at.run()
    assert at.selectbox(key="review_epoch").value == 1 and first_samples(at) == [0, 1, 2]  # the choice stays
    labels = list(at.selectbox(key="review_epoch").options)
    assert labels[-1] == "epoch 5 (recommended, last)" and labels[3] == "epoch 4"
    assert open_app("review").selectbox(key="review_epoch").value == 5  # a new session: the recommended one


def test_export_uses_the_picked_epochs_flags_and_says_which(store, captured_downloads):
    run_id = run_with_epochs(store)
    at = open_app("export")
    assert not at.error and at.selectbox(key="export_epoch").value == 2

    def exported() -> pd.DataFrame:
        name = next(n for n in captured_downloads if n.endswith(".csv") and "_cleaned_" in n)
        return pd.read_csv(io.BytesIO(captured_downloads[name][1]()))

    out = exported()
    assert (out["flags_epoch"] == 2).all()
    assert sorted(out.loc[out["is_label_issue"], "sample_index"]) == list(range(20, 40))
    np.testing.assert_allclose(out["clean_prob"], clean_prob(2))
    assert "flags of epoch 2" in joined(at)
    at.selectbox(key="export_epoch").set_value(1).run()
    assert not at.exception
    out = exported()
    assert (out["flags_epoch"] == 1).all()
    assert sorted(out.loc[out["is_label_issue"], "sample_index"]) == list(range(20))
    assert "flags of epoch 1" in joined(at)
    assert store.get_run(run_id)["status"] == "finished"
    # the per-class summary counts the picked epoch's flags too
    summary = at.dataframe[1].value.set_index("class")
    flagged = out.groupby("given_label")["is_label_issue"].sum()
    assert all(int(summary.loc[c, "flagged"]) == int(flagged.get(c, 0)) for c in NAMES)


def test_train_page_marks_the_recommended_epoch_and_says_why(store):
    run_with_epochs(store)
    at = open_app("train")
    assert not at.exception and not at.error
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    [acc] = [s for s in specs if "held-out agreement with given labels" in s]
    assert '"recommended"' in acc
    assert any("Recommended: epoch 2 agrees best (80.0%)" in c and "last epoch 3 (70.0%)" in c
               for c in (e.value for e in at.caption))


def test_no_session_state_warning_on_either_page(store):
    run_with_epochs(store)
    for page, key in (("review", "review_epoch"), ("export", "export_epoch")):
        at = open_app(page)
        at.selectbox(key=key).set_value(1).run()
        assert not at.exception and not at.warning, [w.value for w in at.warning]
