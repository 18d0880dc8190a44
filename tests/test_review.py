"""selfmix_core.review: the review table, its filters and ordering, decision choices,
bulk accept, undo of a tab's whole last action and the messages about them. Correctness
only (timing: bench/bench_review.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfmix_core.reports import EpochReport
from selfmix_core.review import (
    ACCEPT_CHOICE,
    DROP_CHOICE,
    KEEP_CHOICE,
    bulk_accept_rows,
    choice_to_decision,
    decision_choice,
    decision_choices,
    describe_conflicts,
    describe_undo,
    filter_review,
    review_counts,
    review_frame,
    top_suggestions,
    undo_last_action,
)
from selfmix_core.store import Store

NAMES = ["neg", "pos", "neutral"]


def make_report(given, clean, pred, prob, in_training=None, tau=0.5, loss=None) -> EpochReport:
    """loss defaults to -log(clean): label_score (exp(-loss)) then equals clean_prob."""
    n = len(given)
    clean = np.asarray(clean, dtype=np.float64)
    with np.errstate(divide="ignore"):
        loss = -np.log(clean) if loss is None else np.asarray(loss, dtype=np.float64)
    return EpochReport(
        epoch=3, phase="selfmix", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"total": 1.0}, given_label=np.asarray(given), loss=loss, norm_loss=np.zeros(n),
        clean_prob=clean, predicted_label=np.asarray(pred), predicted_prob=np.asarray(prob, dtype=np.float64),
        in_training=np.ones(n, bool) if in_training is None else np.asarray(in_training, bool),
        gmm=None, tau=tau, n_clean=int((clean >= tau).sum()), n_noisy=int((clean < tau).sum()),
    )


TEXTS = ["Great movie", "awful plot", "An OK film", "great acting, AWFUL script", "plain text", "so-so [ok] (x)"]
GIVEN = [1, 0, 2, 1, 0, 2]
CLEAN = [0.9, 0.1, 0.3, 0.05, np.nan, 0.45]
PRED = [1, 1, 0, 0, 0, 2]
PROB = [0.95, 0.8, 0.6, 0.7, 0.5, 0.55]
TRAIN = [True, True, True, True, False, True]


@pytest.fixture
def df():
    return review_frame(TEXTS, make_report(GIVEN, CLEAN, PRED, PROB, TRAIN), NAMES)


def test_review_frame_columns_and_values(df):
    for col in ("sample_index", "text", "given_label", "suggested_label", "confidence", "clean_prob",
                "label_score", "is_label_issue", "action", "decision", "final_label"):
        assert col in df.columns
    assert list(df["sample_index"]) == list(range(6))
    assert list(df["given_label"].astype(str)) == ["pos", "neg", "neutral", "pos", "neg", "neutral"]
    assert list(df["suggested_label"].astype(str)) == ["pos", "pos", "neg", "neg", "neg", "neutral"]
    assert df["confidence"].tolist() == PROB
    # flagged: clean_prob < tau and still in training (sample 4 is out of training)
    assert df["is_label_issue"].tolist() == [False, True, True, True, False, True]
    assert (df["action"] == "none").all() and df["decision"].isna().all()
    assert list(df["final_label"].astype(str)) == list(df["given_label"].astype(str))


def test_filter_default_order_most_likely_wrong_first(df):
    out = filter_review(df)
    assert list(out["sample_index"]) == [3, 1, 2, 5]  # ascending clean_prob, flagged only


def test_filter_by_given_suggested_score_and_query(df):
    assert list(filter_review(df, given=["pos"])["sample_index"]) == [3]
    assert list(filter_review(df, given="neutral")["sample_index"]) == [2, 5]
    assert list(filter_review(df, suggested=["neg"])["sample_index"]) == [3, 2]
    assert list(filter_review(df, given=["neg", "pos"], suggested=["pos"])["sample_index"]) == [1]
    assert list(filter_review(df, score_range=(0.1, 0.4))["sample_index"]) == [1, 2]
    assert list(filter_review(df, score_range=(0.4, 0.1))["sample_index"]) == [1, 2]  # bounds in any order
    # case-insensitive, plain text (regex characters are literal)
    assert list(filter_review(df, query="awful")["sample_index"]) == [3, 1]
    assert list(filter_review(df, query="[ok]")["sample_index"]) == [5]
    assert list(filter_review(df, query=" GREAT ")["sample_index"]) == [3]
    assert filter_review(df, query="nothing like this").empty


def test_filter_all_samples_puts_unscored_last(df):
    out = filter_review(df, flagged_only=False)
    assert list(out["sample_index"]) == [3, 1, 2, 5, 0, 4]
    # a sample without a score only passes a full range
    assert 4 not in set(filter_review(df, flagged_only=False, score_range=(0.0, 0.99))["sample_index"])


def test_decisions_merge_and_stay_in_review():
    decisions = {
        0: {"action": "relabel", "new_label": 2},  # not flagged, but decided: stays in review
        1: {"action": "accept", "new_label": 1},
        2: {"action": "drop", "new_label": None},
        3: {"action": "keep", "new_label": 1},
    }
    df = review_frame(TEXTS, make_report(GIVEN, CLEAN, PRED, PROB, TRAIN), NAMES, decisions)
    assert df["action"].tolist() == ["relabel", "accept", "drop", "keep", "none", "none"]
    assert df["final_label"].astype(object).tolist()[:4] == ["neutral", "pos", np.nan, "pos"]
    assert df["decision"].tolist()[:4] == ["label: neutral", ACCEPT_CHOICE, DROP_CHOICE, KEEP_CHOICE]
    assert df["final_id"].tolist()[:4] == [2, 1, -1, 1]
    assert df["decision_id"].tolist() == [-1] * 6  # these decisions carry no decision_id
    with_ids = review_frame(TEXTS, make_report(GIVEN, CLEAN, PRED, PROB, TRAIN), NAMES,
                            {2: {"action": "drop", "new_label": None, "decision_id": 7}})
    assert with_ids["decision_id"].tolist() == [-1, -1, 7, -1, -1, -1]  # what the page shows, for `expected`
    assert list(filter_review(df)["sample_index"]) == [3, 1, 2, 5, 0]
    assert list(filter_review(df, undecided_only=True)["sample_index"]) == [5]
    assert review_counts(df) == {"flagged": 5, "reviewed": 4, "decisions": 4, "mislabeled": 3,
                                 "uncertain": 1, "total": 6}


def test_given_labels_override_the_reports_trained_labels():
    # the report trained sample 1 as class 2 after a decision; the review shows the dataset's label
    report = make_report([1, 2, 2], [0.1, 0.9, 0.2], [0, 2, 2], [0.9, 0.9, 0.9])
    df = review_frame(["a", "b", "c"], report, NAMES, {1: {"action": "relabel", "new_label": 2}},
                      given_labels=np.array([1, 0, 2]))
    assert list(df["given_label"].astype(str)) == ["pos", "neg", "neutral"]
    assert list(df["final_label"].astype(str)) == ["pos", "neutral", "neutral"]


def test_review_frame_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="one per text"):
        review_frame(["a", "b"], make_report([0, 1, 1], [0.1] * 3, [0] * 3, [0.5] * 3), NAMES)
    with pytest.raises(ValueError, match="same samples"):
        review_frame(["a", "b"], make_report([0, 1, 1], [0.1] * 3, [0] * 3, [0.5] * 3), NAMES,
                     given_labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="outside"):
        review_frame(["a"], make_report([0], [0.1], [0], [0.5]), NAMES, {5: {"action": "drop", "new_label": None}})


def test_choices_round_trip():
    choices = decision_choices(NAMES)
    assert choices[:3] == [ACCEPT_CHOICE, KEEP_CHOICE, DROP_CHOICE] and "label: neutral" in choices
    assert choice_to_decision(ACCEPT_CHOICE, 0, 1, NAMES) == ("accept", 1)
    assert choice_to_decision(ACCEPT_CHOICE, 1, 1, NAMES) == ("keep", None)  # suggestion = given label
    assert choice_to_decision(KEEP_CHOICE, 0, 1, NAMES) == ("keep", None)
    assert choice_to_decision(DROP_CHOICE, 0, 1, NAMES) == ("drop", None)
    assert choice_to_decision("label: neutral", 0, 1, NAMES) == ("relabel", 2)
    assert choice_to_decision("label: neg", 0, 1, NAMES) == ("keep", None)
    with pytest.raises(ValueError):
        choice_to_decision("label: nope", 0, 1, NAMES)
    assert decision_choice("relabel", "pos") == "label: pos"
    assert decision_choice("none", None) is None


def test_bulk_accept_rows_only_undecided_and_changing(df):
    decided = review_frame(TEXTS, make_report(GIVEN, CLEAN, PRED, PROB, TRAIN), NAMES,
                           {1: {"action": "keep", "new_label": 0}})
    rows = bulk_accept_rows(filter_review(decided))
    # 3 (pos -> neg) and 2 (neutral -> neg); 1 is decided, 5's suggestion equals its label
    assert rows.to_dict("records") == [
        {"sample_index": 3, "old_label": 1, "new_label": 0, "action": "accept"},
        {"sample_index": 2, "old_label": 2, "new_label": 0, "action": "accept"},
    ]
    assert bulk_accept_rows(filter_review(df, query="zzz")).empty


def test_undo_last_action_takes_back_a_whole_action_of_its_own_session(tmp_path):
    store = Store(tmp_path / "home")
    ds = store.add_dataset("d", pd.DataFrame({"text": TEXTS, "label": GIVEN}))
    run = store.create_run(ds, {"epochs": 1})
    assert undo_last_action(store, run, session="a") == []
    assert describe_undo([]) == "Nothing to undo."
    store.add_decision(run, 0, 1, 2, "relabel", session="a")
    store.add_decisions(run, [(1, 0, 1, "accept"), (2, 2, 0, "accept"), (3, 1, 0, "accept")], session="a")
    store.add_decision(run, 4, 0, None, "drop", session="b")  # another tab, after
    undone = undo_last_action(store, run, session="a")
    assert [d["sample_index"] for d in undone] == [1, 2, 3]  # the bulk accept, whole (same millisecond or not)
    assert describe_undo(undone) == "Undid 3 decisions (accept) on samples #1, #2, #3."
    assert set(store.current_decisions(run)) == {0, 4}
    undone = undo_last_action(store, run, session="a")
    assert describe_undo(undone) == "Undid the relabel on sample #0."
    assert undo_last_action(store, run, session="a") == []  # b's drop is not a's to undo
    assert set(store.current_decisions(run)) == {4}
    assert [d["sample_index"] for d in undo_last_action(store, run)] == [4]  # session None: anyone's
    store.close()


def test_describe_conflicts_names_the_samples():
    one = describe_conflicts({15: {"action": "drop"}})
    assert "Sample #15" in one and "it is now: drop" in one and "not saved" in one
    assert "no decision now" in describe_conflicts({15: None})
    many = describe_conflicts({i: None for i in range(7)})
    assert "7 of these samples (#0, #1, #2, #3, #4, …)" in many and "Nothing was saved" in many


def test_filter_many_rows_vectorised():
    """100k rows: correct results (the timing lives in bench/bench_review.py)."""
    rng = np.random.default_rng(0)
    n = 100_000
    given = rng.integers(0, 3, n)
    clean = rng.random(n)
    report = make_report(given, clean, rng.integers(0, 3, n), rng.random(n))
    texts = [f"sample {i} {'needle' if i % 1000 == 0 else 'hay'}" for i in range(n)]
    df = review_frame(texts, report, NAMES)
    out = filter_review(df, given=["neg"], query="NEEDLE")
    expect = [i for i in range(0, n, 1000) if given[i] == 0 and clean[i] < 0.5]
    assert sorted(out["sample_index"]) == expect
    assert np.all(np.diff(out["clean_prob"].to_numpy()) >= 0)


# ---- label score, uncertain vs likely mislabeled, top-3 ------------------------------------------------


def test_label_score_is_the_probability_of_the_given_label_and_orders_the_review():
    """The GMM posterior saturates (0.0 for every top row): the order comes from exp(-loss),
    which has a real spread; clean_prob breaks ties and stays a column."""
    loss = [0.1, 3.0, 0.7, 2.0, 1.0, 5.0]
    df = review_frame(TEXTS, make_report(GIVEN, [0.9, 0.0, 0.0, 0.0, np.nan, 0.0], PRED, PROB, TRAIN, loss=loss),
                      NAMES)
    assert np.allclose(df["label_score"].iloc[[0, 1, 2, 3, 5]], np.exp(-np.array([0.1, 3.0, 0.7, 2.0, 5.0])))
    assert np.isnan(df["label_score"].iloc[4])  # out of training: no score
    assert list(filter_review(df)["sample_index"]) == [5, 1, 3, 2]  # lowest label_score first
    assert list(filter_review(df, score_range=(0.0, 0.1))["sample_index"]) == [5, 1]
    assert (df["clean_prob"].iloc[[1, 2, 3, 5]] == 0.0).all()


def test_label_score_falls_back_to_clean_prob_without_losses():
    report = make_report(GIVEN, CLEAN, PRED, PROB, TRAIN, loss=np.full(6, np.nan))
    df = review_frame(TEXTS, report, NAMES)
    assert np.array_equal(df["label_score"].to_numpy(), df["clean_prob"].to_numpy(), equal_nan=True)


def test_flagged_samples_suggested_their_own_label_are_uncertain(df):
    # flagged: 1 (neg -> pos), 2 (neutral -> neg), 3 (pos -> neg), 5 (neutral -> neutral)
    assert df["status"].tolist() == ["", "likely mislabeled", "likely mislabeled", "likely mislabeled", "", "uncertain"]
    assert list(filter_review(df, status="uncertain")["sample_index"]) == [5]
    assert list(filter_review(df, status="likely mislabeled")["sample_index"]) == [3, 1, 2]
    assert list(filter_review(df, status=None)["sample_index"]) == [3, 1, 2, 5]
    with pytest.raises(ValueError):
        filter_review(df, status="clean")


def test_top_suggestions_uses_top3_when_the_report_has_them():
    report = make_report(GIVEN, CLEAN, PRED, PROB, TRAIN)
    assert top_suggestions(report, 2, NAMES) == [("neg", 0.6)]  # top-1 only
    report.top3_label = np.array([[1, 0, 2]] * 6)
    report.top3_prob = np.array([[0.5, 0.3, 0.2]] * 6)
    assert top_suggestions(report, 2, NAMES) == [("pos", 0.5), ("neg", 0.3), ("neutral", 0.2)]
    assert top_suggestions(report, 2, NAMES, k=2) == [("pos", 0.5), ("neg", 0.3)]
