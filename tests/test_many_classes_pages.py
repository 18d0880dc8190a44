"""Train and Review pages with many classes (Banking77 has 77 intents with long names):
the histogram class picker, the list of confused pairs and its hand-over to Review."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfmix_core.config import TrainConfig
from selfmix_core.reports import EpochReport, GMMParams
from tests.test_app_pages import home, model_dir, open_app, store  # noqa: F401 (fixtures)

K = 20
NAMES = [f"direct_debit_payment_not_recognised_{i}" if i % 3 == 0 else f"intent_{i}" for i in range(K)]


def many_class_run(store) -> tuple[str, EpochReport]:
    n = 4 * K
    given = np.repeat(np.arange(K), 4)
    frame = pd.DataFrame({"text": [f"text number {i}" for i in range(n)], "label": [NAMES[g] for g in given]})
    ds = store.add_dataset("many", frame, {"text_column": "text", "label_column": "label",
                                           "true_label_column": None, "label_names": NAMES})
    run_id = store.create_run(ds, TrainConfig(epochs=2, warmup_epochs=1), name="many")
    pred = given.copy()
    pred[given == 5] = 7  # class 5 is always predicted as class 7: the most confused pair
    pred[0] = 1
    clean = np.where(pred != given, 0.1, 0.9)
    counts = np.zeros((K, K), dtype=np.int64)
    np.add.at(counts, (given, pred), 1)
    report = EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=pred, predicted_prob=np.full(n, 0.8), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5,
        n_clean=int((clean >= 0.5).sum()), n_noisy=int((clean < 0.5).sum()), given_vs_predicted=counts,
    )
    store.save_epoch_report(run_id, report)
    store.set_run_status(run_id, "finished")
    return run_id, report


def test_train_page_lists_confused_pairs_and_sends_one_to_review(store):  # noqa: F811
    run_id, _ = many_class_run(store)
    at = open_app("train")
    picker = at.multiselect(key=f"train_hist_classes_{run_id}")
    assert sorted(picker.value) == [0, 5]  # the classes with flagged samples
    [pairs] = [d for d in at.dataframe if "given" in d.value.columns]
    first = pairs.value.iloc[0]
    assert (first["given"], first["predicted"], int(first["count"])) == (NAMES[5], NAMES[7], 4)
    assert first["share_of_given"] == pytest.approx(100.0)
    picker.set_value([3, 5]).run()
    assert not at.exception
    at.selectbox(key=f"train_pair_pick_{run_id}").set_value(0).run()
    at.button(key=f"train_pair_go_{run_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["review_given"] == [NAMES[5]]
    assert at.session_state["review_suggested"] == [NAMES[7]]
    rows = at.dataframe[0].value
    assert set(rows["given"]) == {NAMES[5]} and set(rows["suggested"]) == {NAMES[7]} and len(rows) == 4


def test_review_pager_without_the_session_state_warning(store, monkeypatch):  # noqa: F811
    """The pager was keyed "review_page" and that key was also set through Session State
    (the filter reset, the state kept across pages): Streamlit logged "The widget with key
    "review_page" was created with a default value but also had its value set via the
    Session State API". Its key now changes instead; the page shown survives a visit away."""
    from streamlit.elements.lib import policies

    logged = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *a, **k: logged.append(msg % a))
    many_class_run(store)
    at = open_app("review")
    at.toggle(key="review_flagged_only").set_value(False).run()  # 80 rows: 4 pages
    [pager] = at.get("pagination")
    assert pager.value == 1
    pager.set_value(3).run()
    assert at.session_state["review_page"] == 3 and at.dataframe[0].value["sample"].iloc[0] == 50
    at.switch_page("pages/2_Train.py").run()
    at.switch_page("pages/3_Review.py").run()
    assert at.session_state["review_page"] == 3 and at.get("pagination")[0].value == 3
    at.multiselect(key="review_given").set_value([NAMES[5]]).run()  # a filter change: back to page 1
    assert at.session_state["review_page"] == 1
    assert not at.exception
    assert not [m for m in logged if "Session State" in m], logged


def test_without_true_labels_no_text_or_chart_talks_of_found_flips(store):  # noqa: F811
    many_class_run(store)
    at = open_app("train")
    from tests.test_app_pages import joined

    charts_json = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert charts_json and "flip" not in charts_json.lower()
    text = joined(at).lower()
    assert "flip detection" not in text and "how well the clean probability" not in text
    assert "label wrong, known from the true labels" not in text
