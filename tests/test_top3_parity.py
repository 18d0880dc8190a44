"""Export parity with the CLI's samples.csv: label_score, predicted_prob and the model's
top-3 suggestions, from EpochReport.top3_label / top3_prob (with defaults for reports
saved before they existed)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from selfmix_core.cli import samples_frame
from selfmix_core.data import TextDataset
from selfmix_core.export import build_cleaned_frame
from selfmix_core.reports import ARRAY_FIELDS, EpochReport, top_k

NAMES = ["a", "b", "c", "d"]


def report(n: int = 5) -> tuple[EpochReport, np.ndarray]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=n)
    labels, top = top_k(probs)
    given = np.arange(n) % 4
    clean = np.linspace(0.1, 0.9, n)
    return EpochReport(
        epoch=1, phase="warmup", seconds=1.0, train_seconds=1.0, score_seconds=0.0, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=probs.argmax(1), predicted_prob=probs.max(1), in_training=np.ones(n, bool), gmm=None,
        tau=0.5, n_clean=3, n_noisy=2, top3_label=labels, top3_prob=top,
    ), probs


def test_top_k_most_probable_first_and_fewer_classes():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    labels, top = top_k(probs)
    assert labels.tolist() == [[1, 2, 0], [0, 1, 2]]  # ties: the lower class id first
    assert top.tolist() == [[0.6, 0.3, 0.1], [0.5, 0.25, 0.25]]
    labels, top = top_k(np.array([[0.3, 0.7]]))
    assert labels.tolist() == [[1, 0, -1]] and np.isnan(top[0, 2])


def test_report_round_trip_and_old_reports_get_defaults():
    r, _ = report()
    back = EpochReport.from_parts(r.scalars_dict(), r.arrays_bytes())
    assert (back.top3_label == r.top3_label).all() and np.allclose(back.top3_prob, r.top3_prob)
    buf = io.BytesIO()  # a report saved before top3 existed
    np.savez_compressed(buf, **{k: np.asarray(getattr(r, k)) for k in ARRAY_FIELDS if not k.startswith("top3")})
    old = EpochReport.from_parts(r.scalars_dict(), buf.getvalue())
    assert old.top3_label.shape == (5, 3) and (old.top3_label == -1).all() and np.isnan(old.top3_prob).all()
    assert "top3_label" not in r.scalars_dict()


def test_export_carries_scores_and_top3_like_the_cli():
    r, probs = report()
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(5)], "label": [NAMES[g] for g in r.given_label]})
    out = build_cleaned_frame(frame, r.given_label, NAMES, {}, r.clean_prob, 0.5, predicted_labels=r.predicted_label,
                              flags_epoch=1, predicted_prob=r.predicted_prob, top3_labels=r.top3_label,
                              top3_probs=r.top3_prob, label_score=r.label_score)
    assert out["label_score"].tolist() == pytest.approx(np.exp(-r.loss).tolist())  # P(given label)
    assert out["predicted_prob"].tolist() == pytest.approx(r.predicted_prob.tolist())
    order = np.argsort(-probs, axis=1)
    for j in range(3):
        assert out[f"top{j + 1}_label"].tolist() == [NAMES[i] for i in order[:, j]]
        assert out[f"top{j + 1}_prob"].to_numpy() == pytest.approx(probs[np.arange(5), order[:, j]])
    assert (out["top1_label"] == out["predicted_label"]).all()
    ds = TextDataset(texts=list(frame["text"]), labels=r.given_label, label_names=NAMES)
    cli = samples_frame(ds, r)
    for col in ("label_score", "predicted_prob", "top1_label", "top1_prob", "top2_label", "top2_prob",
                "top3_label", "top3_prob"):
        assert col in out.columns and col in cli.columns
        assert out[col].tolist() == cli[col].tolist(), col
    # an old report: unknown suggestions are None / NaN
    blank = build_cleaned_frame(frame, r.given_label, NAMES, {}, r.clean_prob, 0.5,
                                top3_labels=np.full((5, 3), -1), top3_probs=np.full((5, 3), np.nan))
    assert blank["top2_label"].isna().all() and blank["top2_prob"].isna().all()
    plain = build_cleaned_frame(frame, r.given_label, NAMES, {}, None, 0.5)
    assert not {"label_score", "predicted_prob", "top1_label"} & set(plain.columns)


def test_export_rejects_bad_top3():
    r, _ = report()
    frame = pd.DataFrame({"text": ["x"] * 5})
    with pytest.raises(ValueError, match="both or neither"):
        build_cleaned_frame(frame, r.given_label, NAMES, {}, r.clean_prob, 0.5, top3_labels=r.top3_label)
    with pytest.raises(ValueError, match="class ids"):
        build_cleaned_frame(frame, r.given_label, NAMES, {}, r.clean_prob, 0.5, top3_labels=r.top3_label + 4,
                            top3_probs=r.top3_prob)
    with pytest.raises(ValueError, match="predicted_prob"):
        build_cleaned_frame(frame, r.given_label, NAMES, {}, r.clean_prob, 0.5, predicted_prob=np.full(5, 2.0))
