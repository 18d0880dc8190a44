"""Data page: load a labeled text table (upload or demo), choose its columns, check it,
optionally simulate label noise, and save it to the studio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from selfmix_core.data import MAX_UNPACKED_BYTES, DataValidationError, dataset_from_frame
from selfmix_core.demo import DEMO_SOURCE, DemoNotFetchedError, demo_cache_path, demo_preset, load_demo_frame
from selfmix_core.noise import noisy_dataset
from studio import charts, state, uploads
from studio.text import md

UPLOAD_TYPES = ["csv", "tsv", "txt", "jsonl", "ndjson", "json", "parquet", "pq", "gz", "bz2", "xz", "zip"]
NONE = "(none)"
NOISE_HELP = {
    "sym": "symmetric: a flipped label goes to any other class, uniformly",
    "asym": "asymmetric: class i flips to class i+1 (systematic confusions)",
    "idn": "instance-dependent: the most ambiguous texts get their most plausible wrong label",
}
# A table may have thousands of columns; only the ones the person picks need work. The
# column guesses look at the first GUESS_COLUMNS, the preview shows PREVIEW_COLUMNS.
GUESS_COLUMNS = 200
PREVIEW_COLUMNS = 50
TEXT_GUESSES = ("text", "sentence", "content", "review", "document", "body", "title")
LABEL_GUESSES = ("label", "labels", "category", "class", "target", "y", "sentiment", "intent")


def max_upload_mb() -> int:
    try:
        return int(st.get_option("server.maxUploadSize"))
    except Exception:
        return 200


def _guess_text_column(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    for guess in TEXT_GUESSES:
        for c in cols:
            if c.lower() == guess:
                return c
    best, best_len = cols[0], -1.0
    for c in cols[:GUESS_COLUMNS]:
        s = frame[c].head(500)
        if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            mean_len = s.dropna().astype(str).str.len().mean()
            if mean_len == mean_len and mean_len > best_len:
                best, best_len = c, float(mean_len)
    return best


def _guess_label_column(frame: pd.DataFrame, text_col: str) -> str:
    cols = [str(c) for c in frame.columns if c != text_col]
    if not cols:
        return text_col
    for guess in LABEL_GUESSES:
        for c in cols:
            if c.lower() == guess:
                return c
    return min(cols[:GUESS_COLUMNS], key=lambda c: frame[c].head(2000).nunique(dropna=True))


def _set_frame(frame: pd.DataFrame, name: str, origin: str, noise: dict | None = None) -> None:
    """Make `frame` the table being prepared and reset the column / noise widgets."""
    ss = st.session_state
    ss["data_frame"] = frame
    ss["data_frame_name"] = name
    ss["data_frame_origin"] = origin
    ss["data_frame_version"] = ss.get("data_frame_version", 0) + 1
    text_col = _guess_text_column(frame)
    ss["data_text_col"] = text_col
    ss["data_label_col"] = _guess_label_column(frame, text_col)
    true_guess = next((c for c in frame.columns if str(c).lower() in ("true_label", "clean_label", "gold_label")), NONE)
    ss["data_true_col"] = true_guess
    ss["data_name"] = name
    ss["data_noise_on"] = bool(noise and noise.get("kind") not in (None, "none"))
    if noise:
        ss["data_noise_kind"] = noise.get("kind", "sym") if noise.get("kind") != "none" else "sym"
        ss["data_noise_rate"] = float(noise.get("rate", 0.2))
        ss["data_noise_seed"] = int(noise.get("seed", 0))
    ss.pop("data_test_frame", None)


def _show_validation_error(exc: Exception, what: str = "The data") -> None:
    problems = getattr(exc, "problems", None) or [str(exc)]
    lines = "\n".join(f"- {md(p)}" for p in problems)
    note = ""
    if "Row numbers count data rows" in str(exc):
        note = "\n\nRow numbers count data rows from 1 (row 1 is the first row after the header)."
    st.error(f"**{what} cannot be used as it is:**\n\n{lines}{note}")


# ---- loading ---------------------------------------------------------------------------------


def render_sources() -> None:
    ss = st.session_state
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("Upload your labeled file")
        up = st.file_uploader(
            f"CSV, TSV, JSONL or Parquet with a text column and a label column (up to {max_upload_mb()} MB; "
            f".gz/.zip/.bz2/.xz compressed files too, unpacking to at most {MAX_UNPACKED_BYTES // 1024**2} MB)",
            type=UPLOAD_TYPES, key="data_upload",
        )
        if up is not None and ss.get("data_upload_id") != up.file_id:
            _handle_upload(up)
        upload_error = ss.get("data_upload_error")
        if up is not None and upload_error and upload_error[0] == up.file_id:
            _show_validation_error(upload_error[1], md(up.name))
    with right:
        st.subheader("…or try the demo")
        st.markdown(
            "1,000 Rotten Tomatoes snippets (fresh / rotten review or plot summary) with 20% of the labels "
            "flipped on purpose, so you can see how many flips SelfMix finds. A first epoch takes a "
            "couple of minutes on a laptop CPU."
        )
        fetched = demo_cache_path().is_file()
        if st.button("Load demo", key="data_load_demo", type="primary" if fetched else "secondary"):
            _load_demo()
        if not fetched:
            st.caption("The demo file is not downloaded yet. Fetch it once (needs internet) with:")
            st.code("python -m selfmix_core.demo fetch", language="bash")
        with st.expander("Source of the demo data"):
            st.caption(DEMO_SOURCE)
    err = ss.pop("data_load_error", None)
    if err:
        st.error(err)


def _handle_upload(up) -> None:
    ss = st.session_state
    size = int(getattr(up, "size", 0) or 0)
    if size > uploads.SYNC_PARSE_BYTES:
        uploads.parse_job(up.file_id, up.getvalue(), up.name)
        ss["data_pending_upload"] = (up.file_id, up.name, size)
        ss["data_upload_id"] = up.file_id
        return
    ss["data_upload_id"] = up.file_id
    ss.pop("data_upload_error", None)
    try:
        frame = uploads.parse_inline(up.getvalue(), up.name)
    except (DataValidationError, ValueError) as exc:
        ss["data_upload_error"] = (up.file_id, exc)
        ss.pop("data_frame", None)
        return
    _set_frame(frame, Path(up.name).name.split(".")[0] or "dataset", "upload")


def render_pending_upload() -> bool:
    """While a big upload is parsed in the background: a spinner polled every second.
    Returns True when a parse is still running."""
    ss = st.session_state
    pending = ss.get("data_pending_upload")
    if not pending:
        return False
    file_id, name, size = pending

    @st.fragment(run_every=1.0)
    def poll() -> None:
        fut = uploads.parse_job(file_id, None, name)
        if not fut.done():
            st.info(f"Reading {md(name)} ({size / 1024**2:,.0f} MB) in the background… you can keep using the app.")
            return
        ss.pop("data_pending_upload", None)
        try:
            frame = fut.result()
        except (DataValidationError, ValueError) as exc:
            ss["data_load_error"] = f"{md(name)} cannot be used: {md(exc)}"
            ss.pop("data_frame", None)
        else:
            _set_frame(frame, Path(name).name.split(".")[0] or "dataset", "upload")
        uploads.forget(file_id)
        st.rerun(scope="app")

    try:
        poll()
    except KeyError:  # the job was forgotten (server restarted the parse pool)
        ss.pop("data_pending_upload", None)
        return False
    return True


def _load_demo() -> None:
    ss = st.session_state
    try:
        frame = load_demo_frame()
    except DemoNotFetchedError as exc:
        ss["data_load_error"] = (
            "The demo dataset is not downloaded yet. In a terminal, in the app's folder, run\n\n"
            "`python -m selfmix_core.demo fetch`\n\nthen press **Load demo** again.\n\n" + md(exc)
        )
        return
    except ValueError as exc:
        ss["data_load_error"] = f"The demo dataset could not be read: {md(exc)}"
        return
    preset = demo_preset(frame, n=1000, noise="sym", rate=0.2, seed=0)
    _set_frame(preset["frame"], preset["name"], "demo", noise=preset["noise"])
    ss["data_text_col"], ss["data_label_col"] = preset["text_column"], preset["label_column"]


# ---- checking --------------------------------------------------------------------------------


def _validated(frame: pd.DataFrame, text_col: str, label_col: str, true_col: str | None, name: str):
    """dataset_from_frame, remembered for the current frame and columns."""
    ss = st.session_state
    key = (ss.get("data_frame_version"), text_col, label_col, true_col)
    cached = ss.get("_data_validated")
    if cached and cached[0] == key:
        return cached[1]
    ds = dataset_from_frame(frame, text_column=text_col, label_column=label_col,
                            true_label_column=true_col, source=name)
    ss["_data_validated"] = (key, ds)
    return ds


def _free_column(frame: pd.DataFrame, base: str) -> str:
    name, i = base, 2
    while name in frame.columns:
        name, i = f"{base}_{i}", i + 1
    return name


def _saved_message(msg: str) -> None:
    st.success(msg)
    st.page_link(state.PAGE_TRAIN, label="Next: train on it", icon=state.PAGE_ICONS["train"])


def render_prepare(saved_msg: str | None = None) -> None:
    ss = st.session_state
    frame: pd.DataFrame = ss["data_frame"]
    st.divider()
    st.subheader(f"Check {md(ss.get('data_frame_name', 'dataset'))}")
    wide = frame.shape[1] > PREVIEW_COLUMNS
    st.caption(f"{len(frame):,} rows × {frame.shape[1]:,} columns. Preview of the first rows"
               + (f" and the first {PREVIEW_COLUMNS} columns (every column is kept):" if wide else ":"))
    st.dataframe(frame.iloc[:100, :PREVIEW_COLUMNS] if wide else frame.head(100), hide_index=False, height=240)

    cols = [str(c) for c in frame.columns]
    c1, c2, c3 = st.columns(3)
    for key in ("data_text_col", "data_label_col"):
        if ss.get(key) not in cols:
            ss[key] = cols[0]
    if ss.get("data_true_col") not in [NONE] + cols:
        ss["data_true_col"] = NONE
    text_col = c1.selectbox("Text column", cols, key="data_text_col", help="The column holding the texts to classify.")
    label_col = c2.selectbox("Label column", cols, key="data_label_col",
                             help="The given (possibly wrong) labels: class names or integer ids.")
    true_opt = c3.selectbox("True-label column (optional)", [NONE] + cols, key="data_true_col",
                            help="Only if you KNOW the correct labels (e.g. a benchmark): the app then "
                                 "measures how well it finds the wrong ones.")
    true_col = None if true_opt == NONE else true_opt
    if len({text_col, label_col} | ({true_col} if true_col else set())) < (3 if true_col else 2):
        st.error("Pick different columns for the text, the label and the true label.")
        return
    try:
        ds = _validated(frame, text_col, label_col, true_col, ss.get("data_frame_name", ""))
    except (DataValidationError, ValueError) as exc:
        _show_validation_error(exc)
        return

    counts = pd.Series(ds.labels).value_counts().reindex(range(ds.num_classes), fill_value=0)
    given = {ds.label_names[i]: int(v) for i, v in counts.items()}
    compare = None
    if ds.true_labels is not None:
        tc = pd.Series(ds.true_labels).value_counts().reindex(range(ds.num_classes), fill_value=0)
        compare = {ds.label_names[i]: int(v) for i, v in tc.items()}
        n_wrong = int((ds.true_labels != ds.labels).sum())
        st.info(f"True labels known: {n_wrong:,} of {len(ds):,} given labels ({n_wrong / len(ds):.1%}) are wrong.")
    shown = list(given.items())[:20]
    more = f", … ({ds.num_classes - 20} more)" if ds.num_classes > 20 else ""
    st.success(f"{len(ds):,} texts, {ds.num_classes} classes: " + ", ".join(f"{md(k)} ({v:,})" for k, v in shown) + more)
    for w in ds.warnings:  # accepted, but to be seen before saving
        st.warning(md(w))
    if ds.num_classes > 100 or ds.num_classes > len(ds) / 2:
        st.warning(f"The label column {md(label_col)} has {ds.num_classes:,} different values for {len(ds):,} texts. "
                   "Is it really the label column?")
    counts_fig = charts.class_counts_figure(given, compare)
    box = st.container(height=600) if counts_fig.layout.height > 600 else st.container()  # many classes: scroll
    box.plotly_chart(counts_fig, key="data_counts_chart")

    st.subheader("Simulate label noise (optional)")
    st.caption("Flip a known share of the labels on purpose; the original labels are kept in an added "
               "true-label column, so the Train page can show how many flips SelfMix finds.")
    n1, n2, n3, n4 = st.columns([2, 2, 3, 1])
    noise_on = n1.toggle("Simulate noise", key="data_noise_on", disabled=true_col is not None,
                         help="Not available when a true-label column is chosen (it already says which labels are wrong).")
    ss.setdefault("data_noise_kind", "sym")
    ss.setdefault("data_noise_rate", 0.2)
    ss.setdefault("data_noise_seed", 0)
    kind = n2.selectbox("Noise kind", list(NOISE_HELP), key="data_noise_kind", disabled=not noise_on,
                        help="; ".join(f"{k}: {v}" for k, v in NOISE_HELP.items()))
    rate = n3.slider("Share of labels to flip", 0.0, 0.8, step=0.05, key="data_noise_rate", disabled=not noise_on,
                     format="%.2f")
    seed = n4.number_input("Seed", min_value=0, step=1, key="data_noise_seed", disabled=not noise_on)
    if noise_on and true_col is None:
        st.caption(f"{NOISE_HELP[kind]}. About {round(rate * len(ds)):,} labels will be flipped.")

    st.subheader("Test set (optional)")
    test_up = st.file_uploader("A held-out file with the same columns and classes: the Train page then shows "
                               "test accuracy per epoch", type=UPLOAD_TYPES, key="data_test_upload")
    test_ds = None
    if test_up is not None:
        try:
            test_frame = uploads.parse_inline(test_up.getvalue(), test_up.name)
            test_ds = dataset_from_frame(test_frame, text_column=text_col, label_column=label_col,
                                         label_names=list(ds.label_names), source=test_up.name)
            st.success(f"Test set {md(test_up.name)}: {len(test_ds):,} texts.")
        except (DataValidationError, ValueError) as exc:
            _show_validation_error(exc, f"The test file {md(test_up.name)}")
            test_ds = None

    st.subheader("Save")
    ss.setdefault("data_name", ss.get("data_frame_name", "dataset"))
    name = st.text_input("Dataset name", key="data_name", max_chars=120)
    if st.button("Save dataset", key="data_save", type="primary"):
        _save(ds, name, noise_on and true_col is None, kind, float(rate), int(seed), test_ds)
    if saved_msg:
        _saved_message(saved_msg)


def _add_frame(store, name: str, frame: pd.DataFrame, meta: dict) -> str:
    # Stored as it is: the reader already refused what Parquet cannot hold as it was
    # given (JSON objects, mixed-type columns), so nothing is rewritten here in silence.
    return store.add_dataset(name, frame, meta)


def _save(ds, name: str, noise_on: bool, kind: str, rate: float, seed: int, test_ds) -> None:
    ss = st.session_state
    store = state.get_store()
    name = (name or "").strip() or "dataset"
    frame = ds.frame.copy()
    names = np.asarray(ds.label_names, dtype=object)
    meta = {
        "text_column": ds.text_column,
        "label_column": ds.label_column,
        "true_label_column": ds.true_label_column,
        "label_names": list(ds.label_names),
        "source": ss.get("data_frame_name", ""),
        "origin": ss.get("data_frame_origin", "upload"),
        "noise": None,
    }
    if noise_on and rate > 0:
        try:
            with st.spinner("Flipping labels…"):
                noisy, info = noisy_dataset(ds, kind, rate, np.random.default_rng(seed))
        except ValueError as exc:
            st.error(f"The noise could not be simulated: {md(exc)}")
            return
        true_col = _free_column(frame, "true_label")
        frame[ds.label_column] = names[noisy.labels]
        frame[true_col] = names[ds.labels]
        meta["true_label_column"] = true_col
        meta["noise"] = {"kind": kind, "rate": rate, "seed": seed, "realised_rate": float(info.rate),
                         "n_flipped": int(info.n_flipped), "label_column_before": "in " + true_col}
    try:
        if test_ds is not None:
            test_meta = {"role": "test", "text_column": test_ds.text_column, "label_column": test_ds.label_column,
                         "true_label_column": None, "label_names": list(ds.label_names), "source": test_ds.source}
            meta["test_dataset_id"] = _add_frame(store, f"{name} (test)", test_ds.frame, test_meta)
        dataset_id = _add_frame(store, name, frame, meta)
    except ValueError as exc:
        st.error(f"The dataset could not be saved: {md(exc)}")
        return
    state.select_dataset(dataset_id)
    msg = f"Saved **{md(name)}**: {len(frame):,} texts, {len(names)} classes"
    if meta["noise"]:
        msg += f", {meta['noise']['n_flipped']:,} labels flipped ({meta['noise']['realised_rate']:.1%} {kind} noise)"
    if test_ds is not None:
        msg += f", with a test set of {len(test_ds):,} texts"
    ss["data_saved_msg"] = msg + "."
    st.rerun()


def render_saved(store) -> None:
    datasets = state.user_datasets(store)
    if not datasets:
        return
    st.divider()
    st.subheader("Saved datasets")
    rows = []
    for d in datasets:
        noise = d["meta"].get("noise") or {}
        rows.append({
            "name": d["name"], "rows": d["n_rows"], "classes": len(d["meta"].get("label_names") or []),
            "simulated noise": f"{noise.get('realised_rate', 0):.1%} {noise.get('kind')}" if noise else "",
            "true labels": "yes" if d["meta"].get("true_label_column") else "",
            "test set": "yes" if d["meta"].get("test_dataset_id") else "",
            "saved": d["created_at"][:16].replace("T", " "),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def main() -> None:
    ss = st.session_state
    store = state.get_store()
    st.title("Data")
    msg = ss.pop("data_saved_msg", None)
    if msg:  # at the top, and again under the Save button where the person is looking
        _saved_message(msg)
    render_sources()
    if render_pending_upload():
        return
    if ss.get("data_frame") is not None:
        render_prepare(msg)
    else:
        st.info("No table loaded yet: upload a file above or press **Load demo**.")
    render_saved(store)


if __name__ == "__main__":
    state.run_page("Data", main)
