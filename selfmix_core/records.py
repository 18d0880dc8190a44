"""What a run leaves behind, built from its EpochReports: one record per epoch, the
metrics.json document, samples.csv's frame, and every epoch's saved report.

The CLI (`train`) and the benchmark harness (`bench`) both build their results here, so
neither imports the other for it.
"""

from __future__ import annotations

import json
from pathlib import Path


def epoch_record(r) -> dict:
    det = r.detection
    return {
        "epoch": r.epoch,
        "phase": r.phase,
        "losses": r.losses,
        "test_accuracy": r.test_accuracy,
        "test_macro_f1": r.test_macro_f1,
        "n_test": r.n_test,
        "test_sampled": r.test_sampled,
        "train_accuracy_true": r.train_accuracy_true,
        "detection_auroc": det.auroc if det else None,
        "detection_precision": det.precision if det else None,
        "detection_recall": det.recall if det else None,
        "detection_f1": det.f1 if det else None,
        "val_accuracy": r.val_accuracy,
        "val_loss": r.val_loss,
        "n_val": r.n_val,
        "recommended_epoch": r.recommended_epoch,
        "recommendation": r.recommendation,
        "n_clean": r.n_clean,
        "n_noisy": r.n_noisy,
        "train_n_clean": r.train_n_clean,
        "train_n_noisy": r.train_n_noisy,
        "gmm": r.gmm.to_dict() if r.gmm else None,
        "seconds": r.seconds,
        "train_seconds": r.train_seconds,
        "score_seconds": r.score_seconds,
        "samples_trained": r.samples_trained,
        "train_samples_per_second": r.samples_trained / r.train_seconds if r.train_seconds > 0 else None,
        "warnings": r.warnings,
        "fallback": r.fallback,
    }


def metrics_document(method: str, config, records: list[dict], flags_report, extra: dict) -> dict:
    """metrics.json. flags_report: the report whose flags samples.csv holds (the
    recommended epoch's by default); `detection` is that epoch's, when true labels are known."""
    accs = [e["test_accuracy"] for e in records if e["test_accuracy"] is not None]
    det = flags_report.detection if flags_report is not None else None
    recommended = records[-1].get("recommended_epoch") if records else None
    return {
        "method": method,
        "epochs": records,
        "best_test_accuracy": max(accs) if accs else None,
        "last_test_accuracy": accs[-1] if accs else None,
        "recommended_epoch": recommended if recommended is not None else (records[-1]["epoch"] if records else None),
        "recommendation": records[-1].get("recommendation") if records else None,
        "flags_epoch": flags_report.epoch if flags_report is not None else None,
        "detection": det.to_dict() if det else None,
        "config": config.to_dict(),
        **extra,
    }


LABEL_COLUMNS = ("given_label", "true_label", "predicted_label", "top1_label", "top2_label",
                 "top3_label")  # samples.csv's label columns


def chosen_epoch(choice: str | int, records: list[dict]) -> int:
    """The epoch number that --flags-epoch names, given the records so far (a later
    epoch than the last finished one falls back to the last)."""
    last = records[-1]["epoch"]
    if choice == "last":
        return last
    if choice == "recommended":
        return records[-1].get("recommended_epoch") or last
    return min(int(choice), last)


def save_report(folder: Path, report) -> None:
    """Keep every epoch's report (scalars + per-sample arrays) so that any epoch's flags
    can be written later: folder/epoch-NNN.json and .npz (about 15 bytes a sample)."""
    from .atomic import atomic_write_bytes, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / f"epoch-{report.epoch:03d}.npz", report.arrays_bytes())
    atomic_write_text(folder / f"epoch-{report.epoch:03d}.json", json.dumps(report.scalars_dict()))
    emb = getattr(report, "embeddings", None)
    if emb is not None:  # epoch-NNN.emb.npy, (N, H) float16: kept for this and the recommended epoch only
        import io

        import numpy as np

        buf = io.BytesIO()
        np.save(buf, np.asarray(emb, dtype="<f2"), allow_pickle=False)
        atomic_write_bytes(folder / f"epoch-{report.epoch:03d}.emb.npy", buf.getvalue())
        keep = {f"epoch-{e:03d}.emb.npy" for e in (report.epoch, report.recommended_epoch) if e}
        for old in folder.glob("epoch-*.emb.npy"):
            if old.name not in keep:
                old.unlink(missing_ok=True)


def load_report(folder: Path, epoch: int):
    from .reports import EpochReport

    scalars = json.loads((folder / f"epoch-{epoch:03d}.json").read_text())
    report = EpochReport.from_parts(scalars, (folder / f"epoch-{epoch:03d}.npz").read_bytes())
    emb_path = folder / f"epoch-{epoch:03d}.emb.npy"
    if emb_path.exists():
        import numpy as np

        report.embeddings = np.load(emb_path, allow_pickle=False)
    return report


def issue_frame(train, r):
    """samples.csv's is_near_duplicate, near_duplicate_group, is_outlier, outlier_score of
    report r (selfmix_core.explore; NA without the report's embeddings, except the
    near-duplicates of identical text)."""
    from .explore import find_issues, issue_columns

    dup, scores = find_issues(getattr(r, "embeddings", None), train.texts, train.labels)
    return issue_columns(dup, scores, len(train))


def samples_frame(train, r, issues=None):
    """samples.csv; issues: issue_frame(train, r) to add its four columns (None: without)."""
    import numpy as np
    import pandas as pd

    names = np.asarray(train.label_names, dtype=object)
    df = pd.DataFrame({
        "index": np.arange(len(train)),
        "text": train.texts,
        "given_label": names[r.given_label],
    })
    if train.true_labels is not None:
        df["true_label"] = names[np.asarray(train.true_labels)]
    df["clean_prob"] = r.clean_prob
    df["label_score"] = r.label_score
    df["predicted_label"] = names[r.predicted_label]
    df["predicted_prob"] = r.predicted_prob
    with_none = np.append(names, None)  # -1: unknown (a report saved before top-3 existed)
    top_ids = np.asarray(r.top3_label, dtype=np.int64)
    for j in range(top_ids.shape[1]):
        df[f"top{j + 1}_label"] = with_none[top_ids[:, j]]
        df[f"top{j + 1}_prob"] = np.where(top_ids[:, j] >= 0, np.asarray(r.top3_prob, dtype=np.float64)[:, j], np.nan)
    df["loss"] = r.loss
    df["is_label_issue"] = r.is_label_issue
    if issues is not None:
        for col in issues.columns:
            df[col] = issues[col].to_numpy()
    return df
