"""Export page: the cleaned dataset (CSV / JSONL / Parquet) with the flags of the picked
epoch (the recommended one unless the person picks another; the file's flags_epoch
column says which), the decision log and a per-class summary of what the review changed."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from selfmix_core.export import EXPORT_MIME, build_cleaned_frame, class_change_summary, export_bytes
from studio import explore as studio_explore
from studio import state
from studio.text import md

FORMAT_LABELS = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet"}


def cleaned_frame(store, run: dict, include_dropped: bool = False,
                  epoch: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The run's dataset with the audit columns (build_cleaned_frame) from the flags of
    `epoch` (None: no epoch's flags) and the current decisions; also returns the label names."""
    ds = state.load_dataset(store, run["dataset_id"])
    decisions = store.current_decisions(run["id"])
    clean_prob = predicted = None
    scores: dict = {}
    tau = float(run["config"].get("selection", {}).get("tau", 0.5))
    if epoch is not None:
        report = store.load_epoch_report(run["id"], epoch)
        clean_prob, predicted, tau = report.clean_prob, report.predicted_label, float(report.tau)
        scores = dict(predicted_prob=report.predicted_prob, top3_labels=report.top3_label,
                      top3_probs=report.top3_prob, label_score=report.label_score,
                      issues=studio_explore.issue_frame(store, run["id"], epoch, ds))
    frame = store.load_dataset_frame(run["dataset_id"])
    out = build_cleaned_frame(frame, ds.labels, list(ds.label_names), decisions, clean_prob, tau,
                              predicted_labels=predicted, include_dropped=include_dropped, flags_epoch=epoch,
                              **scores)
    return out, list(ds.label_names)


def label_columns(cleaned: pd.DataFrame, dataset: dict) -> list[str]:
    """The cleaned frame's label columns: the added ones and the dataset's own."""
    meta = dataset.get("meta") or {}
    names = ["given_label", "final_label", "predicted_label", "top1_label", "top2_label", "top3_label",
             meta.get("label_column"), meta.get("true_label_column")]
    return [c for c in dict.fromkeys(names) if c is not None and c in cleaned.columns]


def export_file_name(dataset_name: str, run: dict, fmt: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_name).strip("_") or "dataset"
    return f"{stem}_cleaned_{run['id'][:6]}.{fmt}"


def decision_log_frame(store, run_id: str, names: list[str]) -> pd.DataFrame:
    log = store.decision_log(run_id)
    if log.empty:
        return log

    def name(v):
        return None if pd.isna(v) else names[int(v)] if 0 <= int(v) < len(names) else str(v)

    out = log.copy()
    out["old_label"] = [name(v) for v in log["old_label"]]
    out["new_label"] = [name(v) for v in log["new_label"]]
    return out


def main() -> None:
    store = state.get_store()
    st.title("Export")
    dataset = state.selected_dataset(store)
    if dataset is None:
        st.info("No dataset yet: go to **Data** first. After training and reviewing, the cleaned dataset is exported here.")
        st.page_link(state.PAGE_DATA, label="Go to Data", icon=state.PAGE_ICONS["data"])
        return
    run = state.selected_run(store)
    if run is None:
        st.info("No run yet: go to **Train**, then **Review**; the cleaned dataset is exported here.")
        st.page_link(state.PAGE_TRAIN, label="Go to Train", icon=state.PAGE_ICONS["train"])
        return
    summaries = store.list_epoch_summaries(run["id"])
    epoch = why = None
    if summaries:
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        with c1:
            epoch, _recommended, why = state.epoch_picker(summaries, run["id"], key="export_epoch")
        c2.caption(f"Recommended: {why}.")
    else:
        st.info("This run has no finished epoch yet: wait for epoch 1 (Train page), review, then export.")
    include_dropped = st.toggle("Keep dropped samples in the file (marked action = drop)", key="export_include_dropped")
    plain_numbers = st.toggle(
        "CSV: write numeric labels as numbers (-1, not '-1)", key="export_plain_numeric",
        help="CSV cells that start with = + - @ get a leading ' so spreadsheets do not run them as formulas; "
             "that includes labels such as -1. With this on, a label column whose every value is a plain "
             "number is written as it is (a plain number cannot run as a formula).")
    try:
        cleaned, names = cleaned_frame(store, run, include_dropped=include_dropped, epoch=epoch)
        full = cleaned_frame(store, run, include_dropped=True, epoch=epoch)[0] if not include_dropped else cleaned
    except ValueError as exc:
        st.error(f"The cleaned dataset cannot be built: {md(exc)}")
        return
    actions = full["action"].value_counts()
    st.markdown(
        f"Run **{md(run.get('name') or run['id'][:6])}** on **{md(dataset['name'])}**: {len(full):,} samples, "
        f"{int(actions.get('relabel', 0) + actions.get('accept', 0)):,} relabeled, "
        f"{int(actions.get('keep', 0)):,} kept, {int(actions.get('drop', 0)):,} dropped. "
        f"The file has {len(cleaned):,} rows: the original columns plus given_label, final_label, action, "
        "clean_prob, is_label_issue (and sample_index, predicted_label)."
    )
    if epoch is not None:
        st.caption(f"clean_prob, is_label_issue and predicted_label are the flags of epoch {epoch}; "
                   "the file's flags_epoch column says so in every row.")
    plain = label_columns(cleaned, dataset) if plain_numbers else []
    st.subheader("Cleaned dataset")
    cols = st.columns(len(FORMAT_LABELS))
    for col, (fmt, label) in zip(cols, FORMAT_LABELS.items()):
        col.download_button(
            f"Download {label}",
            data=lambda fmt=fmt, frame=cleaned: export_bytes(frame, fmt, plain if fmt == "csv" else ()),
            file_name=export_file_name(dataset["name"], run, fmt),
            mime=EXPORT_MIME[fmt],
            key=f"export_{fmt}",
            on_click="ignore",
            type="primary" if fmt == "csv" else "secondary",
        )
    st.caption("CSV cells that start with = + - @ (also after spaces) get a leading ' so spreadsheets do not run "
               "them as formulas" + ("; label columns of plain numbers are written as they are." if plain else "."))
    st.dataframe(cleaned.head(200), hide_index=True, height=260)

    st.subheader("What changed, per class")
    st.dataframe(class_change_summary(full, names), hide_index=True)

    st.subheader("Decision log")
    log = decision_log_frame(store, run["id"], names)
    if log.empty:
        st.caption("No decisions yet: review flagged samples on the Review page.")
    else:
        st.caption("Every decision in order, undos included (the log is append-only).")
        st.dataframe(log, hide_index=True, height=min(36 * (len(log) + 1) + 3, 400))
        st.download_button("Download the decision log (CSV)",
                           data=lambda log=log: export_bytes(log, "csv"),
                           file_name=export_file_name(dataset["name"], run, "csv").replace("_cleaned_", "_decisions_"),
                           mime=EXPORT_MIME["csv"], key="export_log", on_click="ignore")


if __name__ == "__main__":
    state.run_page("Export", main)
