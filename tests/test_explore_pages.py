"""The Explore page (issue #13) through AppTest: the map, the given x predicted matrix
and the loss histogram each send their selection to Review, which shows exactly those
samples with bulk actions named in the decision log; near-duplicate groups get one label
in one click; the Review filters and the export carry the near-duplicate / outlier columns.

A plotly selection is injected as the chart's session state (what the browser sends:
{"selection": {"points": [{"customdata": ...}]}}); the real lasso is in test_browser.py."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from selfmix_core.store import Store
from studio import explore as studio_explore
from tests.test_app_pages import (APP, NAMES, TIMEOUT, add_tiny_dataset, captured_downloads, hand_report,  # noqa: F401
                                  home, joined, model_dir, store)

EXPLORE = "pages/5_Explore.py"
REVIEW = "pages/3_Review.py"


def explored_run(store: Store) -> str:
    """A finished 1-epoch run on the tiny data (40 samples, every 5th label flipped) with
    embeddings: 3 clusters by given label, sample twin() a near-copy of sample 0 with
    another label, sample 39 far from every class."""
    def near_copy_text(frame):  # a near-duplicate shares its words too (explore.MIN_WORD_OVERLAP)
        j = int(np.flatnonzero(frame["label"].to_numpy() != frame["label"].iloc[0])[0])
        frame.loc[j, "text"] = frame.loc[0, "text"] + " again"

    ds = add_tiny_dataset(store, edit=near_copy_text)
    run = store.create_run(ds, {"epochs": 1, "selection": {"tau": 0.5}}, name="explore")
    report = hand_report(store, run)
    rng = np.random.default_rng(0)
    emb = np.eye(16)[report.given_label] * 5 + rng.normal(scale=1.0, size=(40, 16))
    emb[twin(report.given_label)] = emb[0] + 1e-3
    emb[39] = 0
    emb[39, 10] = 5
    store.save_embeddings(run, 1, emb.astype(np.float16))
    return run


def twin(given: np.ndarray) -> int:
    """The first sample given another label than sample 0."""
    return int(np.flatnonzero(given != given[0])[0])


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def map_key(run: str) -> str:
    return f"explore_map_{run}_1_pca_clean probability"


def test_selection_helpers_read_plotly_events():
    event = {"selection": {"points": [{"customdata": 5}, {"customdata": [3]}, {"customdata": 5}, {"x": 1}],
                           "point_indices": [0, 1], "box": [], "lasso": []}}
    assert studio_explore.selected_samples(event) == [3, 5]
    assert studio_explore.selected_samples(None) == [] and studio_explore.selected_samples({}) == []
    assert studio_explore.selected_cells({"selection": {"points": [{"customdata": [1, 2]}]}}) == [(1, 2)]
    ranges = studio_explore.selected_ranges({"selection": {"points": [{"customdata": [0.5, 1.0]}]}})
    assert ranges == [(0.5, 1.0)]
    loss = np.array([0.1, 0.7, 0.9, 1.5])
    assert studio_explore.samples_in_ranges(loss, np.array([1, 1, 0, 1], bool), ranges).tolist() == [1]


def test_map_lasso_opens_review_with_exactly_those_samples_and_names_them(store):
    run = explored_run(store)
    at = open_page(EXPLORE)
    assert at.title[0].value == "Explore" and not at.error
    assert "PCA of epoch 1" in joined(at)
    picked = [2, 11, 30]
    at.session_state[map_key(run)] = {"selection": {"points": [{"customdata": i} for i in picked],
                                                    "point_indices": [], "box": [], "lasso": []}}
    at.run()
    assert "3 samples selected on the map" in joined(at)
    at.button(key="explore_map_review").click().run()
    assert not at.exception and at.title[0].value == "Review"
    assert "Showing the **3 samples selected on the map**" in joined(at)
    at.switch_page(REVIEW).run()  # AppTest reruns the page it opened last: stay on Review
    assert "Showing the **3 samples selected on the map**" in joined(at)
    table = at.session_state["_review_shown"]
    assert sorted(next(iter(table.values()))) == picked  # exactly those, flagged or not
    at.selectbox(key="review_sel_label").set_value("vehicle")
    at.button(key="review_sel_relabel").click().run()
    assert not at.exception
    decided = store.current_decisions(run)
    assert sorted(decided) == picked  # relabelled (or kept, where vehicle was the given label)
    assert all(d["new_label"] == NAMES.index("vehicle") or d["action"] == "keep" for d in decided.values())
    assert set(store.decision_log(run)["note"]) == {"relabelled 3 samples selected on the map"}
    assert "selected on the map. Undo takes them all back at once." in joined(at)
    # the undo list names the selection; undo takes the action back whole
    at.button(key="review_undo").click().run()
    assert store.current_decisions(run) == {}
    at.button(key="review_selection_clear").click().run()
    assert "Showing the" not in joined(at) and at.toggle(key="review_flagged_only").value


def store_given(store: Store, run: str) -> np.ndarray:
    return store.load_epoch_report(run, 1).given_label


def test_matrix_cell_and_histogram_range_click_through(store):
    run = explored_run(store)
    report = store.load_epoch_report(run, 1)
    at = open_page(EXPLORE)
    at.session_state["explore_tab"] = "Given × predicted"
    at.run()
    at.session_state[f"explore_matrix_{run}"] = {"selection": {"points": [{"customdata": [0, 1]}]}}
    at.run()
    assert not at.exception
    want = np.flatnonzero((report.given_label == 0) & (report.predicted_label == 1)).tolist()
    assert f"{len(want)} samples given colour and predicted fruit" in joined(at)
    at.button(key="explore_matrix_review").click().run()
    assert sorted(next(iter(at.session_state["_review_shown"].values()))) == want
    # a loss range of one class
    at.switch_page(EXPLORE).run()
    at.session_state["explore_tab"] = "Loss by class"
    at.run()
    at.selectbox(key="explore_hist_class").set_value(1).run()
    at.session_state[f"explore_hist_{run}_1"] = {"selection": {"points": [{"customdata": [0.6, 1.0]}]}}
    at.run()
    want = np.flatnonzero((report.given_label == 1) & (report.loss >= 0.6) & (report.loss <= 1.0)).tolist()
    assert want and f"{len(want)} samples of class fruit with a loss in 0.60–1.00" in joined(at)
    at.button(key="explore_hist_review").click().run()
    assert sorted(next(iter(at.session_state["_review_shown"].values()))) == want


def test_near_duplicate_groups_get_one_label_in_one_click(store):
    run = explored_run(store)
    given = store_given(store, run)
    j = twin(given)  # a near-copy of sample 0 with another label: a conflicting pair
    at = open_page(EXPLORE)
    at.session_state["explore_tab"] = "Near-duplicates"
    at.run()
    assert not at.exception
    body = joined(at)
    assert "1 groups with conflicting labels (2 samples)" in body
    group = [k for k in at.session_state if str(k).startswith(f"explore_dup_label_{run}_")]
    assert len(group) == 1
    at.selectbox(key=group[0]).set_value(NAMES[int(given[0])])
    at.button(key=group[0].replace("_label_", "_give_")).click().run()
    assert not at.exception
    decided = store.current_decisions(run)
    assert decided[j]["action"] == "relabel" and decided[j]["new_label"] == int(given[0])
    assert decided[0]["action"] == "keep"
    assert "resolved: one label now" in joined(at)
    assert store.decision_log(run)["note"].iloc[-1].startswith("gave near-duplicate group")
    # outliers tab
    at.session_state["explore_tab"] = "Outliers"
    at.run()
    assert "samples flagged as outliers" in joined(at)


def test_review_issue_filters_and_export_columns(store, captured_downloads):
    run = explored_run(store)
    at = open_page(REVIEW)
    at.toggle(key="review_flagged_only").set_value(False).run()
    at.toggle(key="review_near_duplicates").set_value(True).run()
    assert not at.exception
    assert sorted(next(iter(at.session_state["_review_shown"].values()))) == [0, twin(store_given(store, run))]
    at.toggle(key="review_near_duplicates").set_value(False).run()
    at.toggle(key="review_outliers").set_value(True).run()
    shown = sorted(next(iter(at.session_state["_review_shown"].values())))
    assert 39 in shown and len(shown) <= 5
    at.switch_page("pages/4_Export.py").run()
    assert not at.exception
    csv = [f for f in captured_downloads if f.endswith(".csv") and "cleaned" in f]
    assert csv, list(captured_downloads)
    data = captured_downloads[csv[0]][1]()
    header = data.decode().splitlines()[0]
    assert header.endswith("is_near_duplicate,near_duplicate_group,is_outlier,outlier_score")


def test_explore_without_embeddings_says_so(store):
    ds = add_tiny_dataset(store)
    run = store.create_run(ds, {"epochs": 1, "selection": {"tau": 0.5}}, name="old")
    hand_report(store, run)
    at = open_page(EXPLORE)
    assert any("no sentence embeddings kept" in m.value for m in at.info)
    at.session_state["explore_tab"] = "Near-duplicates"
    at.run()
    assert not at.exception and "identical texts only" in joined(at)
