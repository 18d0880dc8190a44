"""SelfMix Studio: find and fix wrong labels in a text-classification dataset.

Run it with `streamlit run app.py`. This file is the entry point and the Home page; the
other pages are pages/1_Data.py ... pages/4_Export.py and pages/5_Explore.py (shown between
Train and Review). Every page starts with
studio.state.run_page: page config, the shared store, the selected dataset/run (also kept
in the URL), the sidebar navigation and pickers; then it renders itself.
"""

from __future__ import annotations

import streamlit as st

from studio import state
from studio.text import md

APP_TITLE = state.APP_TITLE


def home() -> None:
    store = state.get_store()
    st.title(APP_TITLE)
    st.markdown(
        "SelfMix Studio finds the samples in a labeled text dataset whose label is probably wrong. "
        "It fine-tunes a pretrained text encoder with **SelfMix** (a training method that tolerates "
        "noisy labels), shows you the suspicious samples with the label the model suggests, and "
        "exports a cleaned dataset with a record of every change."
    )
    st.subheader("How it works")
    steps = [
        (state.PAGE_DATA, "1 · Data", "Load a labeled CSV, TSV, JSONL or Parquet file (or the demo), pick the text and label columns, save it."),
        (state.PAGE_TRAIN, "2 · Train", "Start training; watch the loss histograms, the clean/noisy split and the accuracy epoch by epoch."),
        (state.PAGE_EXPLORE, "Explore", "Optional: a map of the samples, the given × predicted matrix and the loss histograms to select samples from; near-duplicates and outliers."),
        (state.PAGE_REVIEW, "3 · Review", "Go through the flagged samples, most suspicious first: accept the suggestion, pick another label, keep or drop."),
        (state.PAGE_EXPORT, "4 · Export", "Download the cleaned dataset (CSV, JSONL or Parquet), the decision log and a per-class summary."),
    ]
    for page, label, text in steps:
        c1, c2 = st.columns([1, 5], vertical_alignment="center")
        c1.page_link(page, label=label)
        c2.markdown(text)

    st.subheader("Recent runs")
    runs = store.list_runs(limit=10)
    if not state.user_datasets(store):
        st.info("No dataset yet: go to **Data** to load a file or the demo dataset.")
        st.page_link(state.PAGE_DATA, label="Go to Data", icon=state.PAGE_ICONS["data"])
    elif not runs:
        st.info("No run yet: go to **Train** to start one on your dataset.")
        st.page_link(state.PAGE_TRAIN, label="Go to Train", icon=state.PAGE_ICONS["train"])
    for run in runs:
        c1, c2, c3, c4 = st.columns([4, 3, 1, 1], vertical_alignment="center")
        c1.markdown(f"**{md(run.get('name') or 'run ' + run['id'][:6])}** · {md(run['dataset_name'])}")
        total = run.get("total_epochs") or run["config"].get("epochs")
        c2.markdown(
            f"{state.STATUS_ICONS.get(run['status'], '')} {run['status']} · epoch {run['epochs_done']}/{total} · "
            f"{run['created_at'][:16].replace('T', ' ')} UTC"
        )
        if c3.button("Open", key=f"home_open_{run['id']}", help="Show this run on the Train page"):
            state.select_run(run["id"], run["dataset_id"])
            st.switch_page(state.PAGE_TRAIN, query_params={state.QP_RUN: run["id"], state.QP_DATASET: run["dataset_id"]})
        if c4.button("Review", key=f"home_review_{run['id']}", disabled=run["epochs_done"] == 0,
                     help="Review this run's flagged samples"):
            state.select_run(run["id"], run["dataset_id"])
            st.switch_page(state.PAGE_REVIEW, query_params={state.QP_RUN: run["id"], state.QP_DATASET: run["dataset_id"]})

    from selfmix_core.demo import DEMO_SOURCE

    with st.expander("About the demo dataset and the method"):
        st.markdown(
            "**Demo data.** " + DEMO_SOURCE + "\n\n"
            "**Method.** SelfMix (Qiao et al., COLING 2022): after a short warm-up, a two-component "
            "Gaussian mixture on the per-sample losses splits the data into a likely-clean set X and a "
            "likely-noisy set U; training then mixes sentence embeddings of both (EmbMix) and adds a "
            "pseudo-label loss and an R-Drop consistency loss on U. A low *clean probability* means "
            "the given label is probably wrong."
        )


def main() -> None:
    """The Home page. The other pages are the files in pages/ (Streamlit's pages folder);
    every page starts with the same setup (state.run_page)."""
    state.run_page(APP_TITLE, home)


if __name__ == "__main__":
    main()
