"""Train page: settings (the paper's defaults), start / pause / resume / stop, live
progress and the per-epoch charts. Training runs in a background worker
(studio/worker.py); this page only reads the store, polling it while a run is active."""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd
import streamlit as st

from selfmix_core.config import LossWeights, ModelConfig, SelectionConfig, TrainConfig, ValidationConfig
from selfmix_core.decision import recommended_epoch
from selfmix_core.model import ModelLoadError, check_model_max_length, load_tokenizer, resolve_model_path
from selfmix_core.preflight import estimate_run_seconds, stratified_sample, suggest_max_length, time_training_steps
from selfmix_core.store import ACTIVE_STATUSES
from studio import charts, state, worker
from studio.text import md

POLL_S = 1.5
# From this many training texts on, the run shows a provisional ranking halfway through
# its first epoch (SpeedConfig.provisional_every; bench/bench_speed.py measured its AUROC
# against the full epoch's): on small sets the first epoch is over in seconds anyway.
PROVISIONAL_MIN_SAMPLES = 2000
PROVISIONAL_EVERY = 0.5
PROVISIONAL_ROWS = 20
SAMPLE_DEFAULT = 2000  # "train on a sample" proposes this many texts
TIMED_STEPS = 3  # training steps timed for the estimate
MAX_HIST_CLASSES = 12
# What the given x predicted / given x true heatmaps are (studio.charts.confusion_heatmap,
# EpochReport.given_vs_predicted): row-normalised, rows the GIVEN labels.
MATRIX_CAPTION = ("Each row is normalised over all classes: given × predicted reads P(predicted | given), the noise mixed with the model's "
                  "own errors and what it memorised; given × true reads P(true | given). Neither is the noise "
                  "transition T[true, noisy], whose rows are the true labels.")
DEFAULTS = TrainConfig()

# (key, label, default, help) -- the settings form; defaults are the paper's values.
NUMBER_FIELDS = [
    ("train_epochs", "Epochs", DEFAULTS.epochs, "Total epochs, warm-up included (paper: 6 = 2 warm-up + 4 SelfMix)."),
    ("train_warmup", "Warm-up epochs", DEFAULTS.warmup_epochs, "Plain cross-entropy epochs before SelfMix starts; the first clean/noisy split comes from them."),
    ("train_lambda_p", "λp (pseudo-label loss)", DEFAULTS.loss.lambda_p, "Weight of the pseudo-label loss on the likely-noisy set U (paper: 0.2)."),
    ("train_lambda_r", "λr (R-Drop loss)", DEFAULTS.loss.lambda_r, "Weight of the R-Drop consistency loss on U (paper: 0.3)."),
    ("train_tau", "τ (clean threshold)", DEFAULTS.selection.tau, "A sample counts as clean when its clean probability is at least τ; below it, it is flagged (paper: 0.5)."),
    ("train_temperature", "Temperature", DEFAULTS.temperature, "Sharpening temperature of U's soft labels; lower = more confident (0.5)."),
    ("train_alpha", "α (mixup)", DEFAULTS.alpha, "Beta(α, α) parameter of the embedding mixup; larger = stronger mixing (0.75)."),
    ("train_batch", "Batch size", DEFAULTS.batch_size, "Samples per step (half from X, half from U in SelfMix epochs) (paper: 32)."),
    ("train_max_length", "Max length (tokens)", DEFAULTS.model.max_length, "Longer texts are truncated; shorter = faster."),
    ("train_lr", "Learning rate", DEFAULTS.lr, "Adam learning rate (5e-5 suits the small default encoder)."),
    ("train_seed", "Seed", DEFAULTS.seed, "Same seed + same data = same run."),
    ("train_val_fraction", "Held-out share", DEFAULTS.validation.fraction,
     "Share of the texts kept out of training with their given labels. Without clean labels, their agreement "
     "with the model decides when the warm-up hands over and which epoch's flags are recommended; they are still "
     "flagged. 0 = train on everything, fixed warm-up (the paper's protocol)."),
    ("train_extra_warmup", "Extra warm-up epochs (at most)", DEFAULTS.extra_warmup_epochs,
     "The warm-up goes on, up to this many more epochs, while the held-out agreement with the given labels "
     "still improves."),
]


def _init_defaults(dataset: dict) -> None:
    ss = st.session_state
    ss.setdefault("train_model", state.default_model())
    for key, _label, default, _help in NUMBER_FIELDS:
        ss.setdefault(key, default)
    noise = (dataset["meta"].get("noise") or {}).get("kind")
    ss.setdefault("train_class_reg", noise == "idn")
    ss.setdefault("train_method", DEFAULTS.method)
    ss.setdefault("train_device", "auto")
    ss.setdefault("train_name", "")
    ss.setdefault("train_sample_on", False)
    ss.setdefault("train_sample_n", min(SAMPLE_DEFAULT, max(10, int(dataset.get("n_rows") or SAMPLE_DEFAULT))))


@st.cache_data(max_entries=16, show_spinner=False)
def _suggested_max_length(home: str, dataset_id: str, model: str, cap: int | None) -> int | None:
    """The 95th percentile of the dataset's token lengths (None when the tokenizer does
    not load). Cached per dataset and model."""
    try:
        tokenizer = load_tokenizer(model or None)
    except (ModelLoadError, ValueError, OSError):
        return None
    ds = state.load_dataset(state.get_store(), dataset_id)
    return suggest_max_length(ds.texts, tokenizer, q=95.0, cap=cap)


def _max_length_hint(dataset_id: str) -> str | None:
    model = (st.session_state.get("train_model") or "").strip()
    try:
        cap = _model_cap(model)
        value = _suggested_max_length(str(state.get_store().home), dataset_id, model, cap)
    except Exception:  # a hint only: never block the form
        return None
    if value is None:
        return None
    return f"Suggested max length: **{value}** tokens (95% of the texts fit; the longest 5% are truncated)."


@st.cache_data(max_entries=16, show_spinner=False)
def _model_cap(model: str) -> int | None:
    try:
        from selfmix_core.model import max_positions
        from transformers import AutoConfig

        return max_positions(AutoConfig.from_pretrained(resolve_model_path(model or None)))
    except Exception:
        return None


def _sample_indices(dataset_id: str) -> np.ndarray | None:
    """The stratified sample the form asks for (None: train on every text)."""
    ss = st.session_state
    ds = state.load_dataset(state.get_store(), dataset_id)
    n = int(ss.get("train_sample_n") or 0)
    if not ss.get("train_sample_on") or n <= 0 or n >= len(ds):
        return None
    return stratified_sample(ds.labels, n, seed=int(ss.get("train_seed") or 0))


@state.safe_callback
def _estimate(dataset_id: str) -> None:
    """Time a few training steps of the form's model on this data; estimate the run."""
    ss = st.session_state
    ss["train_estimate"] = None
    try:
        config = _config_from_state()
        resolve_model_path(config.model.model)
        check_model_max_length(config.model.max_length, config.model.model)
    except (ValueError, ModelLoadError) as exc:
        ss["train_form_error"] = str(exc)
        return
    ds = state.load_dataset(state.get_store(), dataset_id)
    idx = _sample_indices(dataset_id)
    n = len(ds) if idx is None else len(idx)
    probe = stratified_sample(ds.labels, min(len(ds), 256), seed=0)
    per_sample = time_training_steps(config, [ds.texts[i] for i in probe], ds.labels[probe],
                                     len(ds.label_names), steps=TIMED_STEPS)
    est = estimate_run_seconds(per_sample, n, config.epochs, config.warmup_epochs, config.method)
    f = state.format_seconds
    kinds = (f"{f(est['warmup_epoch_s'])} a warm-up epoch, {f(est['selfmix_epoch_s'])} a SelfMix epoch"
             if config.method == "selfmix" and config.epochs > config.warmup_epochs else f"{f(est['epoch_s'])} an epoch")
    ss["train_estimate"] = (f"Estimated: about {kinds}; **{f(est['run_s'])}** for the {config.epochs} epochs on "
                            f"{n:,} texts ({TIMED_STEPS} timed steps of batch {config.batch_size}, max length "
                            f"{config.model.max_length}, on {config.device}; rough, the first epoch also loads the model).")
    ss["train_form_error"] = None


def _config_from_state() -> TrainConfig:
    ss = st.session_state
    model = (ss["train_model"] or "").strip() or None
    return TrainConfig(
        method=ss["train_method"],
        epochs=int(ss["train_epochs"]),
        warmup_epochs=int(ss["train_warmup"]),
        batch_size=int(ss["train_batch"]),
        lr=float(ss["train_lr"]),
        temperature=float(ss["train_temperature"]),
        alpha=float(ss["train_alpha"]),
        seed=int(ss["train_seed"]),
        device=ss["train_device"],
        model=ModelConfig(model=model, max_length=int(ss["train_max_length"])),
        selection=SelectionConfig(tau=float(ss["train_tau"]), class_reg=bool(ss["train_class_reg"])),
        loss=LossWeights(lambda_p=float(ss["train_lambda_p"]), lambda_r=float(ss["train_lambda_r"])),
        validation=ValidationConfig(fraction=float(ss["train_val_fraction"])),
        extra_warmup_epochs=int(ss["train_extra_warmup"]),
    )


@state.safe_callback
def _start(dataset_id: str) -> None:
    """Form submit: validate, create the run, start the worker (runs before the page)."""
    ss = st.session_state
    try:
        config = _config_from_state()
        resolve_model_path(config.model.model)
        check_model_max_length(config.model.max_length, config.model.model)  # 1000 > 512 failed mid-batch
    except (ValueError, ModelLoadError) as exc:
        ss["train_form_error"] = str(exc)
        return
    store = state.get_store()
    name = (ss.get("train_name") or "").strip() or None
    idx = _sample_indices(dataset_id)
    if idx is not None:  # the run trains on a stored stratified sample: Review and Export show it
        info = store.get_dataset(dataset_id)
        frame = store.load_dataset_frame(dataset_id).iloc[idx].reset_index(drop=True)
        meta = {**info["meta"], "sample_of": dataset_id, "sample_rows": [int(i) for i in idx]}
        dataset_id = store.add_dataset(f"{info['name']} (sample of {len(idx):,})", frame, meta)
    n_train = len(idx) if idx is not None else int(store.get_dataset(dataset_id)["n_rows"])
    if n_train >= PROVISIONAL_MIN_SAMPLES:
        config = dataclasses.replace(config, speed=dataclasses.replace(config.speed, provisional_every=PROVISIONAL_EVERY))
    run_id = store.create_run(dataset_id, config, name=name)
    worker.start_run(store, run_id)
    state.select_run(run_id, dataset_id)
    ss["train_form_error"] = None


def render_settings(dataset: dict, expanded: bool) -> None:
    ss = st.session_state
    _init_defaults(dataset)
    noise = dataset["meta"].get("noise") or {}
    with st.expander("Start a new run" if not expanded else "Settings", expanded=expanded):
        st.caption(f"Device: **{state.device_text()}**. Defaults are the SelfMix paper's; each field has a one-line help (ⓘ).")
        with st.form("train_form", border=False):
            st.text_input("Model", key="train_model", placeholder="bundled MiniLM-L6 (leave empty)",
                          help="Empty = the bundled MiniLM-L6 encoder (works offline). Or a local model folder, or a Hugging Face model id.")
            cols = st.columns(4)
            for i, (key, label, default, help_text) in enumerate(NUMBER_FIELDS):
                col = cols[i % 4]
                if isinstance(default, int):
                    col.number_input(label, min_value=0, step=1, key=key, help=help_text)
                elif key == "train_lr":
                    col.number_input(label, min_value=1e-7, max_value=1.0, step=1e-5, format="%.1e", key=key, help=help_text)
                else:
                    col.number_input(label, min_value=0.0, step=0.05, format="%.2f", key=key, help=help_text)
            c1, c2, c3 = st.columns([2, 1, 1])
            c1.checkbox("Class-regularised loss", key="train_class_reg",
                        help="Normalise each sample's loss within its class before the GMM (paper Eq. 2). "
                             "Recommended for instance-dependent (idn) noise.")
            c2.selectbox("Method", ["selfmix", "ce"], key="train_method",
                         format_func=lambda m: {"selfmix": "SelfMix", "ce": "plain fine-tuning (baseline)"}[m],
                         help="SelfMix, or plain cross-entropy fine-tuning to compare against.")
            c3.selectbox("Device", ["auto", "cpu", "cuda"], key="train_device",
                         help="auto = the GPU when there is one, else the CPU.")
            if noise.get("kind") == "idn" and not ss.get("train_class_reg"):
                st.info("This dataset has instance-dependent (idn) noise: the class-regularised loss is recommended.")
            hint = _max_length_hint(dataset["id"])
            if hint:
                st.caption(hint)
            s1, s2 = st.columns([2, 1], vertical_alignment="bottom")
            s1.checkbox("Train on a sample of the texts (stratified) for a quick first look", key="train_sample_on",
                        help="The run trains on this many texts drawn with the classes in their proportions "
                             "(stored as a dataset of its own: Review and Export show it).")
            s2.number_input("Sample size (texts)", min_value=10, step=100, key="train_sample_n")
            st.text_input("Run name (optional)", key="train_name", max_chars=80)
            b1, b2 = st.columns([1, 3])
            b1.form_submit_button("Start training", type="primary", on_click=_start, args=(dataset["id"],))
            b2.form_submit_button("Estimate time", on_click=_estimate, args=(dataset["id"],),
                                  help=f"Times {TIMED_STEPS} training steps of this model on this data "
                                       "(loads the model: a few seconds).")
        if ss.get("train_estimate"):
            st.info(ss["train_estimate"])
        err = ss.get("train_form_error")
        if err:
            st.error(f"Cannot start: {md(err)}")


# ---- one run ------------------------------------------------------------------------------------


@state.safe_callback
def _act(run_id: str, action: str) -> None:
    store = state.get_store()
    if action == "resume_checkpoint":
        worker.start_run(store, run_id, resume=True)
    elif action == "stop_after_epoch":
        if not worker.stop_after_epoch(run_id):
            st.session_state["train_notice"] = "That run has already ended."
    elif not worker.request(store, run_id, action):
        st.session_state["train_notice"] = "That run has already ended."


def render_controls(store, run: dict) -> None:
    rid, status = run["id"], run["status"]
    alive = worker.is_alive(rid)
    total = run.get("total_epochs") or run["config"].get("epochs")
    cols = st.columns([2, 1, 1, 4])
    if alive and status == "running":
        pausing = run.get("control") == "pause"
        ending = worker.stopping_after_epoch(rid)
        cols[0].button("Pause after this epoch", key="train_pause", on_click=_act, args=(rid, "pause"),
                       disabled=pausing or ending, help="Finish the current epoch, then wait so you can review.")
        with cols[1].popover("Stop…"):
            st.markdown("Stop **now** or **after this epoch**?")
            st.button("Stop now", key="train_stop", on_click=_act, args=(rid, "stop"), width="stretch",
                      help="This epoch's progress is lost: the run can resume from the last finished epoch.")
            st.button("Stop after this epoch", key="train_stop_after", on_click=_act, args=(rid, "stop_after_epoch"),
                      width="stretch", disabled=ending,
                      help="Finish and store the current epoch, then stop (it can be resumed from there).")
        if ending:
            cols[3].info("Stopping when this epoch ends…")
        elif pausing:
            cols[3].info("Pausing when this epoch ends…")
    elif alive and status == "paused":
        cols[0].button("Resume", key="train_resume", type="primary", on_click=_act, args=(rid, "resume"),
                       help="Continue training; your review decisions are used from the next epoch on.")
        cols[1].button("Stop", key="train_stop", on_click=_act, args=(rid, "stop"))
        with cols[3]:
            st.info(f"Paused after epoch {run['epochs_done']}. Review the flagged samples now; the decisions "
                    "feed the next epochs when you resume.")
            st.page_link(state.PAGE_REVIEW, label="Review flagged samples", icon=state.PAGE_ICONS["review"])
    elif alive and status == "stopping":
        cols[3].info("Stopping…")
    elif not alive and run["epochs_done"] < (total or 0) and worker.has_checkpoint(store, rid):
        cols[0].button(f"Resume from epoch {run['epochs_done']}", key="train_resume_ckpt", type="primary",
                       on_click=_act, args=(rid, "resume_checkpoint"),
                       help="Continue this run from its last checkpoint, with the current review decisions.")
    elif not alive and status in ACTIVE_STATUSES:
        cols[3].warning("This run is not training in this app process and has no checkpoint to resume from.")
    notice = st.session_state.pop("train_notice", None)
    if notice:
        st.info(notice)


def render_live(run_id: str, seen_status: str, seen_epoch: int) -> None:
    """Status, progress bars with ETA, warnings. Polls the store while the run is active."""
    store = state.get_store()
    run = store.get_run(run_id)
    summaries = store.list_epoch_summaries(run_id)
    latest = summaries[-1]["epoch"] if summaries else 0
    if run["status"] != seen_status or latest != seen_epoch:
        st.rerun(scope="app")  # new epoch or status: redraw controls and charts
    progress = store.get_progress(run_id)
    est = worker.estimate_progress(run, progress, summaries)
    status = run["status"]
    icon = state.STATUS_ICONS.get(status, "")
    message = (progress or {}).get("message") or ""
    show_message = message and status != "failed" and message != status
    st.markdown(f"**Status:** {icon} {status}" + (f" — {md(message)}" if show_message else ""))
    if status == "failed":
        st.error(f"Training failed: {md(run.get('error') or 'unknown error')}")
    phase = (progress or {}).get("phase") or (summaries[-1]["phase"] if summaries else "")
    if est["in_epoch"]:
        eta = est["epoch_eta_s"]
        st.progress(est["epoch_frac"], text=f"Epoch {est['epoch']} ({phase}): "
                    f"step {(progress or {}).get('step') or 0}/{(progress or {}).get('steps_in_epoch') or '?'}"
                    + (f" · about {state.format_seconds(eta)} left" if eta is not None else ""))
    run_eta = est["run_eta_s"]
    st.progress(est["run_frac"], text=f"Run: {latest}/{est['total']} epochs done"
                + (f" · about {state.format_seconds(run_eta)} left" if run_eta is not None and status in ACTIVE_STATUSES else ""))
    if not summaries:
        flags = worker.provisional_flags(store, run_id)
        if flags is not None:
            render_provisional(store, run, flags)
    if summaries:
        last = summaries[-1]
        if last.get("fallback"):
            st.warning(f"Epoch {last['epoch']}: {last['fallback']}")
        for w in last.get("warnings") or []:
            st.warning(f"Epoch {last['epoch']}: {w}")
        metrics = [("Epoch", f"{last['epoch']}/{est['total']}", f"phase: {last['phase']}"),
                   ("|X| looks clean", f"{last['n_clean']:,}", None),
                   ("|U| flagged", f"{last['n_noisy']:,}", "Samples whose clean probability is below τ.")]
        if last.get("test_accuracy") is not None:
            metrics.append(("Test accuracy", f"{last['test_accuracy']:.1%}", None))
        det = last.get("detection") or {}
        if det.get("auroc") is not None:
            metrics.append(("Flip detection AUROC", f"{det['auroc']:.3f}",
                            f"How well the clean probability ranks the wrong labels first (0.5 = chance). Flagged set: "
                            f"precision {det.get('precision', 0):.1%}, recall {det.get('recall', 0):.1%}."))
        for col, (label, value, help_text) in zip(st.columns(5), metrics):
            col.metric(label, value, help=help_text)


def render_provisional(store, run: dict, flags) -> None:
    """Before the first epoch ends: the most suspicious labels among the samples trained so
    far (a GMM on their losses, dropout off), clearly marked as provisional."""
    ds = state.load_dataset(store, run["dataset_id"])
    names = ds.label_names
    order = np.argsort(flags.clean_prob, kind="stable")[:PROVISIONAL_ROWS]
    idx = np.asarray(flags.index)[order]
    st.info(f"**First look, provisional**: after {flags.fraction:.0%} of epoch 1 ({flags.samples_seen:,} samples "
            f"trained once), the {len(idx)} labels that look most wrong so far. A rough ranking from a model that "
            "has seen part of the data; "
            + ("the full ranking replaces it when epoch 1 ends." if run["status"] in ACTIVE_STATUSES else
               "the run ended before its first epoch did, so no full ranking follows."))
    st.dataframe(pd.DataFrame({
        "sample": idx.astype(np.int64),
        "text": [ds.texts[i] for i in idx],
        "given": [names[ds.labels[i]] for i in idx],
        "suggested": [names[int(p)] for p in np.asarray(flags.predicted_label)[order]],
        "clean_prob": np.asarray(flags.clean_prob)[order].astype(float),
    }), hide_index=True, key=f"train_provisional_{run['id']}", column_config={
        "sample": st.column_config.NumberColumn("#", help="Row number in the dataset (0-based).", width=60),
        "clean_prob": st.column_config.NumberColumn("Clean prob.", format="%.3f",
                                                    help="Provisional: lower = more likely mislabeled."),
    })


def render_charts(store, run: dict) -> None:
    ss = st.session_state
    rid = run["id"]
    summaries = store.list_epoch_summaries(rid)
    if not summaries:
        st.info("The charts appear when the first epoch ends (a warm-up epoch: plain fine-tuning, then every "
                "sample is scored and the loss mixture is fitted).")
        return
    dataset = state.load_dataset(store, run["dataset_id"])
    names = list(dataset.label_names)
    true = state.true_labels_for(dataset)
    epochs = [int(s["epoch"]) for s in summaries]
    latest = epochs[-1]
    recommended, why = recommended_epoch(summaries)
    key = f"train_epoch_{rid}"
    seen = ss.setdefault("_train_latest_seen", {})
    if key not in ss or ss[key] not in epochs or ss[key] == seen.get(rid):
        ss[key] = latest  # follow the newest epoch unless the person picked an older one
    seen[rid] = latest
    if len(epochs) > 1:
        epoch = st.select_slider("Epoch shown", options=epochs, key=key,
                                 help="Browse the epochs; it follows the newest one while you stay on it.")
    else:
        epoch = epochs[0]
    summary = summaries[epochs.index(epoch)]
    report = state.load_report(store, rid, epoch, token=summary.get("seconds"))
    if epoch != latest:  # the live area shows the newest epoch's; show the chosen one's here
        for note in ([summary["fallback"]] if summary.get("fallback") else []) + list(summary.get("warnings") or []):
            st.warning(f"Epoch {epoch}: {note}")
    tabs = st.tabs(["Loss histograms", "Given × predicted", "Accuracy", "Losses and |X|, |U|"])
    with tabs[0]:
        classes = None
        if len(names) > MAX_HIST_CLASSES:
            classes = render_class_picker(rid, report, names)
        st.plotly_chart(charts.loss_histograms(report, names, true, classes=classes), key=f"chart_hist_{rid}")
        st.caption("Bars: samples of each given class by their normalised training loss"
                   + (" (green = label correct, orange = label wrong, known from the true labels)" if true is not None else "")
                   + ". Curves: the two Gaussian components fitted to all losses, each scaled to this class's share of it. "
                     "Dashed line: where the clean probability equals τ; samples to its right are flagged.")
        if report.gmm is not None:
            g = report.gmm
            st.caption(f"GMM separation {g.separation:.2f} (above 2 = two clearly distinct groups), "
                       f"{'converged' if g.converged else 'NOT converged'} in {g.n_iter} iterations.")
    with tabs[1]:
        if len(names) > MAX_HIST_CLASSES:
            render_confusions_many(rid, report, names)
        else:
            c1, c2 = st.columns(2)
            if report.given_vs_predicted is not None:
                c1.plotly_chart(charts.confusion_heatmap(report.given_vs_predicted, names,
                                                         "Given label × predicted label"), key=f"chart_tp_{rid}")
            if report.given_vs_true is not None:
                c2.plotly_chart(charts.confusion_heatmap(report.given_vs_true, names, "Given label × true label",
                                                          x_title="true label"), key=f"chart_tt_{rid}")
            else:
                c2.caption("Given × true appears when the true labels are known (simulated noise or a true-label column).")
            st.caption(MATRIX_CAPTION)
    with tabs[2]:
        acc = charts.accuracy_figure(summaries, recommended=recommended)
        if acc.data:
            st.plotly_chart(acc, key=f"chart_acc_{rid}")
        else:
            st.info("Nothing to plot: there is no test set, no held-out slice and the true labels are unknown. Add a "
                    "test set on the Data page for test accuracy, or simulate noise to see how well the wrong labels "
                    "are found.")
        st.caption(f"Recommended: {why}. Review and Export show this epoch's flags unless you pick another.")
        if acc.data and all(s.get("test_accuracy") is None for s in summaries):
            st.caption("No test set: add one on the Data page to see test accuracy per epoch.")
    with tabs[3]:
        c1, c2 = st.columns(2)
        c1.plotly_chart(charts.loss_components_figure(summaries, recommended=recommended), key=f"chart_loss_{rid}")
        c2.plotly_chart(charts.split_sizes_figure(summaries, recommended=recommended), key=f"chart_split_{rid}")


def _class_picker(key: str, names: list[str], default: Callable[[], list[int]], label: str, help_text: str) -> list[int]:
    """A multiselect of class ids shown by name, starting on default() (again whenever the
    session holds something that is not a list of this run's class ids)."""
    ss = st.session_state
    if key not in ss or not all(isinstance(c, int) and 0 <= c < len(names) for c in ss[key]):
        ss[key] = default()
    return st.multiselect(label, list(range(len(names))), key=key, format_func=lambda c: names[c],
                          placeholder="pick classes to draw", help=help_text)


def render_class_picker(rid: str, report, names: list[str]) -> list[int]:
    """Above a dozen classes, which classes' histograms to draw: a multiselect that starts
    on the classes with the most flagged samples (up to MAX_HIST_CLASSES)."""
    def most_flagged() -> list[int]:
        flagged = np.bincount(np.asarray(report.given_label)[report.is_label_issue], minlength=len(names))
        order = sorted(range(len(names)), key=lambda c: (-int(flagged[c]), c))
        return sorted(c for c in order[:MAX_HIST_CLASSES] if flagged[c] > 0) or order[:1]

    return _class_picker(f"train_hist_classes_{rid}", names, most_flagged, "Classes shown",
                         f"It starts on the {MAX_HIST_CLASSES} classes with the most flagged samples.")


def _review_pair_button(pairs, choice_key: str) -> None:
    """The chosen (given, predicted) pair as the Review page's filter, then that page."""
    pos = st.session_state.get(choice_key)
    if isinstance(pos, int) and 0 <= pos < len(pairs):
        st.session_state["review_pair"] = (str(pairs["given"].iloc[pos]), str(pairs["predicted"].iloc[pos]))
        st.switch_page(state.PAGE_REVIEW)


def render_confusions_many(rid: str, report, names: list[str]) -> None:
    """Above a dozen classes: the most confused (given, predicted) pairs as a sortable
    list, each one sendable to the Review page; the heatmaps below at a readable size,
    confused classes side by side, in a scrolling box."""
    if report.given_vs_predicted is None:
        st.caption("This epoch has no given × predicted counts.")
        return
    pairs = charts.confused_pairs(report.given_vs_predicted, names, top=200)
    st.markdown("**Most confused pairs** (given label → predicted label)")
    if pairs.empty:
        st.caption("The model predicts every sample's given label: no pair is confused.")
    else:
        st.dataframe(
            pairs[["given", "predicted", "count", "share_of_given", "share_of_confusions"]].assign(
                share_of_given=lambda d: d["share_of_given"] * 100, share_of_confusions=lambda d: d["share_of_confusions"] * 100),
            key=f"train_pairs_{rid}", hide_index=True, height=min(420, 35 * (len(pairs) + 1) + 3),
            column_config={
                "given": st.column_config.TextColumn("Given label"),
                "predicted": st.column_config.TextColumn("Predicted label"),
                "count": st.column_config.NumberColumn("Samples", help="Samples of the given class predicted as the other."),
                "share_of_given": st.column_config.NumberColumn("% of given class", format="%.1f%%",
                                                                help="P(predicted | given): of the samples given this label."),
                "share_of_confusions": st.column_config.NumberColumn("% of all confusions", format="%.1f%%"),
            },
        )
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        choice_key = f"train_pair_pick_{rid}"
        c1.selectbox("Pair to review", list(range(len(pairs))), key=choice_key,
                     format_func=lambda i: f"{pairs['given'].iloc[i]} → {pairs['predicted'].iloc[i]} "
                                           f"({pairs['count'].iloc[i]:,})",
                     help="The Review page opens filtered to samples given the first label and suggested the second.")
        if c2.button("Review this pair", key=f"train_pair_go_{rid}", icon=state.PAGE_ICONS["review"]):
            _review_pair_button(pairs, choice_key)
    with st.expander("Heatmaps (confused classes side by side)", expanded=False):
        shown = render_heatmap_classes(rid, report, names)
        box = st.container(height=720)
        box.plotly_chart(charts.confusion_heatmap(report.given_vs_predicted, names, "Given label × predicted label",
                                                  classes=shown), key=f"chart_tp_{rid}")
        if report.given_vs_true is not None:
            box.plotly_chart(charts.confusion_heatmap(report.given_vs_true, names, "Given label × true label",
                                                      x_title="true label", classes=shown), key=f"chart_tt_{rid}")
        st.caption("Rows and columns share one order that puts classes confused with each other next to each other; "
                   "a cell is the share of its whole row (predictions of classes not drawn included). Hover a cell "
                   "for its names and counts; scroll inside the box. " + MATRIX_CAPTION)


def render_heatmap_classes(rid: str, report, names: list[str]) -> list[int]:
    """Which classes the many-class heatmaps draw: a multiselect that starts on the
    charts.HEATMAP_MAX_CLASSES classes most involved in confusions. All K at once would
    be squeezed into the page's width (a few pixels a column)."""
    picked = _class_picker(
        f"train_heatmap_classes_{rid}", names,
        lambda: sorted(charts.most_confused_classes(report.given_vs_predicted, charts.HEATMAP_MAX_CLASSES)),
        "Classes in the heatmaps",
        f"It starts on the {charts.HEATMAP_MAX_CLASSES} classes most confused with others. "
        f"More than about {charts.HEATMAP_MAX_CLASSES} make the cells too narrow to read.")
    return picked or [0]


def render_run(store, run: dict) -> None:
    total = run.get("total_epochs") or run["config"].get("epochs")
    cfg = run["config"]
    st.subheader(md(run.get("name") or f"Run {run['id'][:6]}"))
    st.caption(
        f"{cfg.get('method')} · {total} epochs ({cfg.get('warmup_epochs')} warm-up) · τ {cfg['selection']['tau']} · "
        f"model {md(cfg['model'].get('model') or 'bundled MiniLM-L6')} · batch {cfg.get('batch_size')} · "
        f"run id {run['id']}"
    )
    render_controls(store, run)
    active = run["status"] in ACTIVE_STATUSES and worker.is_alive(run["id"])
    live = st.fragment(run_every=POLL_S if active else None)(state.guarded(render_live))
    live(run["id"], run["status"], run["epochs_done"])
    st.fragment(state.guarded(render_charts))(store, run)


def main() -> None:
    store = state.get_store()
    st.title("Train")
    dataset = state.selected_dataset(store)
    if dataset is None:
        st.info("No dataset yet: go to **Data** to load a file or the demo, then come back to train.")
        st.page_link(state.PAGE_DATA, label="Go to Data", icon=state.PAGE_ICONS["data"])
        return
    run = state.selected_run(store)
    st.caption(f"Dataset **{md(dataset['name'])}** · {dataset['n_rows']:,} texts · "
               f"{len(dataset['meta'].get('label_names') or [])} classes · device {state.device_text()}")
    if run is None:
        render_settings(dataset, expanded=True)
        st.info("No run on this dataset yet: check the settings and press **Start training**.")
        return
    render_run(store, run)
    st.divider()
    render_settings(dataset, expanded=False)


if __name__ == "__main__":
    state.run_page("Train", main)
