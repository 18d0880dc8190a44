"""selfmix_core.explore (issue #13) on small fixed data: the projection, near-duplicates,
outliers and their columns; the store's embeddings and projections (schema 3); the
trainer's scoring pass handing out its embeddings; samples.csv's and the export's columns."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from selfmix_core import explore
from selfmix_core.export import build_cleaned_frame
from selfmix_core.review import bulk_note, bulk_rows, filter_review, review_frame
from selfmix_core.store import SCHEMA_VERSION, Store


def clusters(seed: int = 0, per: int = 30, dim: int = 16):
    """3 well-separated clusters of `per` points each, labels = cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 10
    y = np.repeat(np.arange(3), per)
    emb = centres[y] + rng.normal(scale=0.5, size=(len(y), dim))
    return emb.astype(np.float32), y


def test_pca_projection_is_deterministic_and_separates_clusters():
    emb, y = clusters()
    xy = explore.project(emb, "pca")
    assert xy.shape == (90, 2) and xy.dtype == np.float32
    assert np.array_equal(xy, explore.project(emb, "pca"))
    assert explore.knn_accuracy(xy, y, k=5) == 1.0
    rng = np.random.default_rng(1)
    assert explore.knn_accuracy(rng.normal(size=(90, 2)), y, k=5) < 0.7  # a random map does not separate


def test_tsne_projection_on_small_data():
    emb, y = clusters(per=15)
    xy = explore.project(emb, "tsne", seed=0)
    assert xy.shape == (45, 2) and explore.knn_accuracy(xy, y, k=3) > 0.9


@pytest.mark.parametrize("bad, match", [
    (np.zeros(5), "2-D"), (np.full((3, 2), np.nan), "NaN"), (np.array([["a", "b"]]), "real numbers")])
def test_projection_validates(bad, match):
    with pytest.raises(ValueError, match=match):
        explore.project(bad)
    with pytest.raises(ValueError, match="unknown projection"):
        explore.project(np.zeros((3, 2)), "umap-ish")


def test_near_duplicates_by_embedding_and_by_text():
    emb, y = clusters()
    texts = [f"text {i}" for i in range(len(y))]
    emb[1] = emb[0] * 1.001  # near-copy of 0, same label: a group, not an issue
    texts[1] = "text 0 again"  # (a near-copy shares most of its words too)
    emb[40] = emb[2] + 1e-4  # near-copy of 2 (class 0) given class 1: an issue
    texts[40] = "text 2 copy"
    texts[70] = "  TEXT 3 "  # identical to text 3 after normalisation, another label: an issue
    texts[5] = "Text 4"  # identical to text 4, same label: counted only
    dup = explore.near_duplicates(emb, texts, y, threshold=0.9999)
    assert dup.n_conflicting == 2 and dup.n_exact_same_label == 1
    assert set(np.flatnonzero(dup.is_near_duplicate)) == {2, 40, 3, 70}
    assert dup.group[0] == dup.group[1] >= 0 and dup.group[2] == dup.group[40] != dup.group[3] == dup.group[70]
    assert dup.group[4] == dup.group[5] >= 0 and not dup.is_near_duplicate[[0, 1, 4, 5]].any()
    assert (dup.group[[6, 7, 8]] == -1).all()
    frame = explore.duplicate_groups_frame(dup)
    assert sorted(frame["sample_index"]) == [2, 3, 40, 70] and set(frame["group_size"]) == {2}
    text_only = explore.near_duplicates(None, texts, y, use_embeddings=False)
    assert set(np.flatnonzero(text_only.is_near_duplicate)) == {3, 70}
    # a lower threshold makes bigger groups (whole clusters at 0.5, embeddings alone)
    assert explore.near_duplicates(emb, texts, y, threshold=0.5, min_word_overlap=0).largest_group >= 30


def test_a_tight_class_cluster_is_not_a_duplicate_group():
    # A fine-tuned encoder maps a class into a tight cluster: embeddings nearly identical,
    # texts different. Only the pair that also shares its words is a near-duplicate.
    rng = np.random.default_rng(5)
    centre = rng.normal(size=16).astype(np.float32)
    emb = centre + rng.normal(scale=1e-3, size=(6, 16)).astype(np.float32)
    texts = ["how far is the moon", "who wrote hamlet", "what is the capital of peru", "name a red fruit",
             "how far is the moon from earth", "when did the war end"]
    y = np.array([0, 1, 0, 1, 1, 0])
    dup = explore.near_duplicates(emb, texts, y, threshold=0.99)
    assert sorted(np.flatnonzero(dup.group >= 0)) == [0, 4] and dup.n_groups == 1 and dup.largest_group == 2
    assert set(np.flatnonzero(dup.is_near_duplicate)) == {0, 4}  # labels 0 and 1 differ
    assert explore.near_duplicates(emb, texts, y, threshold=0.99, min_word_overlap=0).largest_group == 6
    np.testing.assert_allclose(explore._word_overlap(texts, np.array([0, 1]), np.array([4, 2])), [5 / 7, 0.0])


def test_near_duplicates_validate():
    with pytest.raises(ValueError, match="threshold"):
        explore.near_duplicates(np.zeros((2, 2)), ["a", "b"], np.array([0, 1]), threshold=1.5)
    with pytest.raises(ValueError, match="labels"):
        explore.near_duplicates(np.zeros((2, 2)), ["a", "b"], np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="rows"):
        explore.near_duplicates(np.ones((3, 2)), ["a", "b"], np.array([0, 1]))


def test_outliers_far_from_every_class():
    emb, y = clusters()
    rng = np.random.default_rng(3)
    junk = rng.normal(size=(3, 16)).astype(np.float32)
    junk[:, :3] = 0  # orthogonal to every class centre
    emb = np.vstack([emb, junk])
    y = np.concatenate([y, [0, 1, 2]])
    scores = explore.outlier_scores(emb, y)
    assert set(np.argsort(-scores)[:3]) == {90, 91, 92}
    flags = explore.outlier_flags(scores)
    assert flags[90:].all() and flags[:90].sum() <= 5  # median + 1.5 IQR: a few tail points of 90
    knn = explore.outlier_scores(emb, method="knn", k=3)
    assert knn.shape == (93,) and (knn >= -1e-6).all()
    with pytest.raises(ValueError, match="labels"):
        explore.outlier_scores(emb)
    with pytest.raises(ValueError, match="method"):
        explore.outlier_scores(emb, y, method="lof")


def test_issue_columns_and_map_sample():
    emb, y = clusters()
    texts = [f"t{i}" for i in range(90)]
    texts[10] = "t0"
    dup, scores = explore.find_issues(emb, texts, y)
    cols = explore.issue_columns(dup, scores, 90)
    assert list(cols.columns) == list(explore.ISSUE_COLUMNS)
    assert cols["near_duplicate_group"].isna().sum() == 90  # t0 / t10 share a label: not an issue
    none = explore.issue_columns(None, None, 4)
    assert none["is_outlier"].isna().all() and none["outlier_score"].isna().all()
    idx = explore.map_sample(1000, limit=100, seed=0, keep=[5, 999])
    assert len(idx) == 100 and {5, 999} <= set(idx) and np.array_equal(idx, explore.map_sample(1000, 100, 0, [5, 999]))
    assert np.array_equal(explore.map_sample(50, limit=100), np.arange(50))


# ---- the store (schema 3) -----------------------------------------------------------------------


def test_store_keeps_embeddings_of_the_recommended_and_last_epoch(tmp_path):
    from tests.test_app_pages import NAMES, add_tiny_dataset, hand_report

    store = Store(tmp_path / "home")
    assert store.schema_version() == SCHEMA_VERSION == 3
    ds = add_tiny_dataset(store)
    run = store.create_run(ds, {"epochs": 3}, name="e")
    rng = np.random.default_rng(0)
    for epoch, rec in ((1, 1), (2, 2), (3, 2)):
        report = hand_report(store, run, epoch=epoch)
        report.embeddings = rng.normal(size=(40, 8)).astype(np.float16)
        report.recommended_epoch = rec
        store.save_epoch_report(run, report)
        if epoch == 2:
            store.save_projection(run, 2, "pca", np.zeros((40, 2)), 0.1)
            store.save_projection(run, 1, "pca", np.zeros((40, 2)), 0.1)
    assert store.embedding_epochs(run) == [2, 3]
    assert store.load_embeddings(run, 1) is None
    got = store.load_embeddings(run, 3)
    assert got.dtype == np.float16 and np.array_equal(got, report.embeddings)
    assert store.load_projection(run, 2, "pca")[0].shape == (40, 2) and store.load_projection(run, 1, "pca") is None
    assert "embeddings" not in store.list_epoch_summaries(run)[0]
    assert len(NAMES) == 3
    with pytest.raises(ValueError, match="shape"):
        store.save_embeddings(run, 1, np.zeros(4))
    store.close()


def test_migration_from_schema_2_keeps_decisions_and_adds_notes(tmp_path):
    from selfmix_core.store import _SCHEMA_V1, _SCHEMA_V2, _split_sql

    home = tmp_path / "home"
    home.mkdir()
    conn = sqlite3.connect(home / "studio.sqlite3")
    conn.executescript(_SCHEMA_V1)
    for statement in _split_sql(_SCHEMA_V2):
        conn.execute(statement)
    t0 = "2024-01-01T00:00:00.000+00:00"
    conn.execute("INSERT INTO datasets VALUES ('d1', 'old', 3, 'datasets/d1.parquet', '{}', ?)", (t0,))
    conn.execute("INSERT INTO runs (id, dataset_id, config, status, created_at, updated_at)"
                 " VALUES ('r1', 'd1', '{}', 'finished', ?, ?)", (t0, t0))
    conn.execute("INSERT INTO decisions (run_id, time, sample_index, old_label, new_label, action, session, batch)"
                 " VALUES ('r1', ?, 0, 0, 1, 'relabel', 's', 'b')", (t0,))
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = Store(home)
    assert store.schema_version() == 3
    assert store.decision_log("r1")["note"].isna().all()
    store.add_decisions("r1", [(1, 0, 2, "relabel"), (2, 0, 2, "relabel")], session="s",
                        note="relabelled 2 samples selected on the map")
    assert store.live_actions("r1", limit=1)[0]["note"] == "relabelled 2 samples selected on the map"
    assert store.decision_log("r1")["note"].tolist()[1:] == ["relabelled 2 samples selected on the map"] * 2
    assert store.embedding_epochs("r1") == []
    store.close()


# ---- the selection's bulk actions ------------------------------------------------------------------


def test_bulk_rows_on_a_selection():
    from tests.test_app_pages import NAMES

    class R:
        tau = 0.5
        clean_prob = np.linspace(0, 1, 6)
        loss = np.linspace(2, 0, 6)
        given_label = np.array([0, 0, 1, 1, 2, 2])
        predicted_label = np.array([1, 0, 2, 1, 0, 2])
        predicted_prob = np.full(6, 0.9)
        in_training = np.ones(6, bool)

        @property
        def label_score(self):
            return np.exp(-self.loss)

    df = review_frame([f"t{i}" for i in range(6)], R(), NAMES, {1: {"action": "drop", "new_label": None}})
    sel = filter_review(df, flagged_only=False, samples=[0, 1, 2])
    assert sorted(sel["sample_index"]) == [0, 1, 2]
    acc = bulk_rows(sel, "accept")
    assert sorted(acc["sample_index"]) == [0, 2]  # 1's suggestion is its given label
    rel = bulk_rows(sel, "relabel", 1)
    assert dict(zip(rel["sample_index"], rel["action"])) == {0: "relabel", 1: "relabel", 2: "keep"}
    assert sorted(bulk_rows(sel, "drop")["sample_index"]) == [0, 2]  # 1 is dropped already
    assert bulk_note("relabel", 37, "selected on the map") == "relabelled 37 samples selected on the map"
    with pytest.raises(ValueError, match="class id"):
        bulk_rows(sel, "relabel")


# ---- the trainer, samples.csv and the export ---------------------------------------------------------


def test_scoring_pass_returns_the_embeddings_the_head_reads(tiny_dataset, tiny_model_factory, tokenizer):
    import torch

    from selfmix_core.config import TrainConfig
    from selfmix_core.trainer import SelfMixTrainer

    cfg = TrainConfig(method="ce", epochs=1, warmup_epochs=0, batch_size=16, score_batch_size=64, device="cpu")
    trainer = SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer)
    [report] = list(trainer.run())
    emb = report.embeddings
    n = len(tiny_dataset)
    assert emb.shape == (n, trainer.model.head[0].in_features) and emb.dtype == np.float16
    with torch.no_grad():
        trainer.model.eval()
        direct = trainer.model.embed(**trainer._encode(tiny_dataset.texts[:4])).float().numpy()
        probs = torch.softmax(trainer.model.classify(torch.from_numpy(emb.astype(np.float32))), -1).numpy()
    np.testing.assert_allclose(emb[:4].astype(np.float32), direct, rtol=1e-2, atol=1e-2)
    assert np.abs(probs.max(1) - report.predicted_prob).max() < 0.02  # the head reads these embeddings
    assert "embeddings" not in report.scalars_dict()


def test_export_and_samples_csv_columns():
    from selfmix_core.data import TextDataset
    from selfmix_core.records import samples_frame

    emb, y = clusters(per=4)
    texts = [f"t{i}" for i in range(12)]
    texts[5] = "t0"  # another label than sample 0: a conflicting pair
    issues = explore.issue_columns(*explore.find_issues(emb, texts, y, threshold=0.9999), 12)
    names = ["a", "b", "c"]
    out = build_cleaned_frame(pd.DataFrame({"text": texts}), y, names, {}, np.full(12, 0.9), 0.5, issues=issues)
    assert list(out.columns[-4:]) == list(explore.ISSUE_COLUMNS)
    assert out["is_near_duplicate"].tolist()[:6] == [True, False, False, False, False, True]
    assert out["near_duplicate_group"][0] == out["near_duplicate_group"][5]
    with pytest.raises(ValueError, match="issues"):
        build_cleaned_frame(pd.DataFrame({"text": texts}), y, names, {}, None, 0.5, issues=issues.iloc[:3])

    class R:
        clean_prob = np.full(12, 0.9)
        predicted_label = y
        predicted_prob = np.full(12, 0.9)
        top3_label = np.tile([0, 1, 2], (12, 1))
        top3_prob = np.full((12, 3), 0.3)
        loss = np.zeros(12)
        is_label_issue = np.zeros(12, bool)
        label_score = np.ones(12)
        given_label = y
        embeddings = np.random.default_rng(5).normal(size=(12, 16)).astype(np.float16)  # no close pair

    from selfmix_core.records import issue_frame

    train = TextDataset(texts, y, names)
    df = samples_frame(train, R(), issue_frame(train, R()))
    assert df["is_near_duplicate"].sum() == 2 and "outlier_score" in df and df["outlier_score"].notna().all()
