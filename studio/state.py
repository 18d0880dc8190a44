"""Shared page helpers: the one Store, the current dataset/run selection, cached
loads, and small rendering pieces every page uses.

Selection: the chosen dataset and run live in st.session_state (SELECTED_DATASET,
SELECTED_RUN) AND in the URL (?dataset=<id>&run=<id>), so a reload, a bookmarked link
or a second tab opened on that URL shows the same run. A session's own choice wins;
a fresh session takes the URL's ids (if they exist); with neither, the newest run (or
dataset) is shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import streamlit as st

from selfmix_core.store import NotFoundError, Store, default_home

from . import worker
from .text import md

SELECTED_DATASET = "selected_dataset_id"
SELECTED_RUN = "selected_run_id"
QP_DATASET = "dataset"
QP_RUN = "run"
MODEL_ENV = "SELFMIX_DEFAULT_MODEL"

PAGE_HOME = "app.py"
PAGE_DATA = "pages/1_Data.py"
PAGE_TRAIN = "pages/2_Train.py"
PAGE_REVIEW = "pages/3_Review.py"
PAGE_EXPORT = "pages/4_Export.py"
PAGE_EXPLORE = "pages/5_Explore.py"  # shown between Train and Review

# Material icons (rendered by Streamlit's own font in markdown, whatever the OS has).
STATUS_ICONS = {
    "created": ":material/schedule:", "running": ":material/directions_run:", "paused": ":material/pause_circle:",
    "stopping": ":material/hourglass_top:", "stopped": ":material/stop_circle:",
    "finished": ":material/check_circle:", "failed": ":material/error:",
}
PAGE_ICONS = {"home": ":material/home:", "data": ":material/table_view:", "train": ":material/model_training:",
              "review": ":material/fact_check:", "export": ":material/download:",
              "explore": ":material/scatter_plot:"}


# ---- the store -----------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _store_for(home: str) -> Store:
    store = Store(home)
    # Runs left "running"/"paused" by a process that died are closed -- unless a worker of
    # THIS process is training them (a store re-opened by a second home lookup).
    if not worker.any_alive(Path(home)):
        store.mark_interrupted_runs()
    return store


def get_store() -> Store:
    """The Store of the studio home ($SELFMIX_HOME or ~/.selfmix_studio), shared by every
    session of this process. Shows an error and stops the page when it cannot be opened."""
    home = str(default_home().expanduser().absolute())
    try:
        return _store_for(home)
    except (ValueError, OSError) as exc:
        st.error(f"Cannot open the studio folder {md(home)}: {md(exc)}")
        st.stop()


# ---- selection (session state + URL) -------------------------------------------------------


def user_datasets(store: Store) -> list[dict]:
    """Stored datasets a person picks from (test sets saved alongside are left out)."""
    return [d for d in store.list_datasets() if d["meta"].get("role") != "test"]


def _exists(fn: Callable[[str], Any], ident: Any) -> bool:
    if not isinstance(ident, str) or not ident:
        return False
    try:
        fn(ident)
        return True
    except (NotFoundError, ValueError):
        return False


def sync_selection(store: Store) -> None:
    """Settle the selected dataset/run for this script run and mirror it into the URL."""
    ss = st.session_state
    qp = st.query_params
    for key, qkey, getter in ((SELECTED_DATASET, QP_DATASET, store.get_dataset), (SELECTED_RUN, QP_RUN, store.get_run)):
        if key not in ss:
            from_url = qp.get(qkey)
            if from_url:
                if _exists(getter, from_url):
                    ss[key] = from_url
                else:
                    ss.setdefault("selection_notice", []).append(
                        f"The {qkey} in the link ({md(from_url)}) does not exist in this studio; showing another."
                    )
        elif ss[key] is not None and not _exists(getter, ss[key]):
            ss[key] = None
    if ss.get(SELECTED_RUN):
        run = store.get_run(ss[SELECTED_RUN])
        if ss.get(SELECTED_DATASET) != run["dataset_id"]:
            ss[SELECTED_DATASET] = run["dataset_id"]
    if not ss.get(SELECTED_DATASET):
        runs = store.list_runs(limit=1)
        if runs:
            ss[SELECTED_DATASET], ss[SELECTED_RUN] = runs[0]["dataset_id"], runs[0]["id"]
        else:
            datasets = user_datasets(store)
            ss[SELECTED_DATASET] = datasets[0]["id"] if datasets else None
    if not ss.get(SELECTED_RUN) and ss.get(SELECTED_DATASET):
        runs = store.list_runs(limit=1, dataset_id=ss[SELECTED_DATASET])
        ss[SELECTED_RUN] = runs[0]["id"] if runs else None
    _write_url()


def _write_url() -> None:
    ss, qp = st.session_state, st.query_params
    for key, qkey in ((SELECTED_DATASET, QP_DATASET), (SELECTED_RUN, QP_RUN)):
        value = ss.get(key)
        if value:
            if qp.get(qkey) != value:
                qp[qkey] = value
        elif qkey in qp:
            del qp[qkey]


def session_token() -> str:
    """This browser tab's token (one Streamlit session: a tab, until it is reloaded). The
    Review page records it with each decision, so Undo takes back this tab's own."""
    ss = st.session_state
    if "_session_token" not in ss:
        import secrets

        ss["_session_token"] = secrets.token_hex(8)
    return ss["_session_token"]


def select_dataset(dataset_id: str | None) -> None:
    ss = st.session_state
    if ss.get(SELECTED_DATASET) != dataset_id:
        ss[SELECTED_DATASET] = dataset_id
        ss[SELECTED_RUN] = None  # the newest run of that dataset is picked on the next sync
    _write_url()


def select_run(run_id: str | None, dataset_id: str | None = None) -> None:
    ss = st.session_state
    ss[SELECTED_RUN] = run_id
    if dataset_id is not None:
        ss[SELECTED_DATASET] = dataset_id
    _write_url()


def selected_dataset(store: Store) -> dict | None:
    ident = st.session_state.get(SELECTED_DATASET)
    if not ident:
        return None
    try:
        return store.get_dataset(ident)
    except (NotFoundError, ValueError):
        return None


def selected_run(store: Store) -> dict | None:
    ident = st.session_state.get(SELECTED_RUN)
    if not ident:
        return None
    try:
        return store.get_run(ident)
    except (NotFoundError, ValueError):
        return None


def run_label(run: dict) -> str:
    """The run picker's text for a run: its name and short id. It does not change while
    the run trains (see picker_labels)."""
    name = run.get("name")
    return f"{name} · {run['id'][:6]}" if name else f"run {run['id'][:6]}"


def run_status(run: dict) -> str:
    """The run's live state in a few words, e.g. "running · epoch 1/2" (Markdown: with
    its status icon)."""
    total = run.get("total_epochs") or run["config"].get("epochs", "?")
    return f"{STATUS_ICONS.get(run['status'], '')} {run['status']} · epoch {run['epochs_done']}/{total}".strip()


def picker_labels(items: list[dict], label: Callable[[dict], str]) -> dict[str, str]:
    """{id: text} for a selectbox whose options are ids: label(item), with the full id
    added where two items would read the same.

    The browser sends back the TEXT of the option picked and Streamlit maps it to the
    option (an unknown text comes through as the text itself), so each text must be
    unique and must not change between a render and the reply: no live status in it."""
    texts = {it["id"]: label(it) for it in items}
    seen: dict[str, int] = {}
    for t in texts.values():
        seen[t] = seen.get(t, 0) + 1
    return {i: (f"{t} · {i}" if seen[t] > 1 else t) for i, t in texts.items()}


def render_sidebar(store: Store) -> None:
    """Dataset and run pickers shared by every page (in the sidebar)."""
    ss = st.session_state
    datasets = user_datasets(store)
    with st.sidebar:
        st.markdown("### Working on")
        if not datasets:
            st.caption("No dataset yet: start on the **Data** page.")
            return
        ids = [d["id"] for d in datasets]
        names = picker_labels(datasets, lambda d: f"{d['name']} ({d['n_rows']:,} rows)")
        current = ss.get(SELECTED_DATASET)
        if current not in ids:
            current = ids[0]
            select_dataset(current)
        ss["nav_dataset"] = current

        @safe_callback
        def on_dataset() -> None:
            if _exists(store.get_dataset, ss["nav_dataset"]):  # an id; anything else is not a choice
                select_dataset(ss["nav_dataset"])

        st.selectbox("Dataset", ids, format_func=lambda i: names.get(i, i), key="nav_dataset", on_change=on_dataset)
        runs = store.list_runs(limit=50, dataset_id=ss.get(SELECTED_DATASET))
        if not runs:
            st.caption("No run on this dataset yet: start one on the **Train** page.")
            return
        run_ids = [r["id"] for r in runs]
        labels = picker_labels(runs, run_label)
        cur_run = ss.get(SELECTED_RUN)
        if cur_run not in run_ids:
            cur_run = run_ids[0]
            select_run(cur_run)
        ss["nav_run"] = cur_run

        @safe_callback
        def on_run() -> None:
            if _exists(store.get_run, ss["nav_run"]):  # an id; anything else is not a choice
                select_run(ss["nav_run"])

        st.selectbox("Run", run_ids, format_func=lambda i: labels.get(i, i), key="nav_run", on_change=on_run)
        st.caption(run_status(next(r for r in runs if r["id"] == cur_run)))


def show_notices() -> None:
    for msg in st.session_state.pop("selection_notice", []) or []:
        st.warning(msg)
    for msg in st.session_state.pop("_callback_errors", []) or []:
        st.error(f"That did not work: {md(msg)}. Nothing else was changed; your saved decisions are safe.")


# Widget values kept when the person moves to another page and back (Streamlit drops the
# state of widgets a run does not draw; re-assigning it turns it into plain session state).
# Only value widgets: buttons, uploaders and data editors cannot be set this way.
PERSISTENT_KEYS = (
    "data_text_col", "data_label_col", "data_true_col", "data_noise_on", "data_noise_kind", "data_noise_rate",
    "data_noise_seed", "data_name",
    "train_model", "train_epochs", "train_warmup", "train_lambda_p", "train_lambda_r", "train_tau",
    "train_temperature", "train_alpha", "train_batch", "train_max_length", "train_lr", "train_seed",
    "train_class_reg", "train_method", "train_device", "train_name",
    "review_given", "review_suggested", "review_score", "review_query", "review_flagged_only", "review_undecided",
    "review_page", "export_include_dropped", "review_near_duplicates", "review_outliers",
    "explore_method", "explore_color", "explore_dup_threshold", "explore_hist_class",
)


def persist_widgets() -> None:
    ss = st.session_state
    for key in PERSISTENT_KEYS:
        if key in ss:
            ss[key] = ss[key]


APP_TITLE = "SelfMix Studio"
NAV = (  # (page file, label, icon key): the sidebar navigation, drawn by every page
    (PAGE_HOME, "Home", "home"), (PAGE_DATA, "Data", "data"), (PAGE_TRAIN, "Train", "train"),
    (PAGE_EXPLORE, "Explore", "explore"), (PAGE_REVIEW, "Review", "review"), (PAGE_EXPORT, "Export", "export"),
)


def render_nav() -> None:
    """The page links at the top of the sidebar. (Streamlit's own list of the pages/
    folder is switched off in .streamlit/config.toml: it would call Home "app".)"""
    with st.sidebar:
        for page, label, icon in NAV:
            st.page_link(page, label=label, icon=PAGE_ICONS[icon])
        st.divider()


def setup(store: Store | None = None) -> Store:
    """Common start of every page run: kept widget values, store, selection (URL sync),
    sidebar (navigation and the dataset/run pickers)."""
    persist_widgets()
    store = store or get_store()
    render_nav()
    sync_selection(store)
    render_sidebar(store)
    show_notices()
    return store


def run_page(title: str, main: Callable[[], None]) -> None:
    """Run one page: page config, the shared setup, then main(); errors become messages."""
    st.set_page_config(page_title=f"{title} · {APP_TITLE}" if title != APP_TITLE else APP_TITLE,
                       page_icon=":material/cleaning_services:", layout="wide")
    guard(setup)
    guard(main)


# ---- cached loads ------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset_cached(home: str, dataset_id: str, created_at: str):
    store = _store_for(home)
    train = worker.load_stored_dataset(store, dataset_id)
    return train


def load_dataset(store: Store, dataset_id: str):
    """The stored dataset as a TextDataset (cached: stored datasets never change)."""
    info = store.get_dataset(dataset_id)
    return _dataset_cached(str(store.home), dataset_id, info["created_at"])


def session_cached(name: str, key: Any, limit: int, make: Callable[[], Any]) -> Any:
    """make()'s value, kept in this session under `name` with the `limit` - 1 newest
    others (the oldest is dropped first): big per-run arrays, not worth the cross-session
    cache_resource."""
    cache: dict = st.session_state.setdefault(name, {})
    if key not in cache:
        if len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[key] = make()
    return cache[key]


def load_report(store: Store, run_id: str, epoch: int, token: Any = None):
    """A saved epoch report with its per-sample arrays. The last few are kept in this
    session; `token` (e.g. the summary's "seconds") tells a re-saved epoch apart."""
    return session_cached("_report_cache", (str(store.home), run_id, int(epoch), token), 4,
                          lambda: store.load_epoch_report(run_id, int(epoch)))


# ---- the epoch whose flags are shown (Review and Export) ------------------------------------------

PICKED_EPOCHS = "flags_epoch_picked"  # {run_id: epoch} the person chose in this session


def _remember_epoch(run_id: str, key: str) -> None:
    st.session_state.setdefault(PICKED_EPOCHS, {})[run_id] = int(st.session_state[key])


def epoch_picker(summaries: list[dict], run_id: str, key: str) -> tuple[int, int, str]:
    """A selectbox of the run's saved epochs ("epoch 3 (recommended)", "epoch 6 (last)");
    returns (picked epoch, recommended epoch, why it is recommended).

    It shows the recommended epoch (decision.recommended_epoch) until the person picks
    one; that choice is kept for the run for the rest of the session, on every page
    with a picker, also when a still-training run recommends another epoch later.
    """
    from selfmix_core.decision import recommended_epoch

    ss = st.session_state
    epochs = [int(s["epoch"]) for s in summaries]
    recommended, why = recommended_epoch(summaries)
    last = max(epochs)
    picked = (ss.get(PICKED_EPOCHS) or {}).get(run_id)
    ss[key] = picked if picked in epochs else recommended

    def label(e: int) -> str:
        tags = [t for t, on in (("recommended", e == recommended), ("last", e == last)) if on]
        return f"epoch {e}" + (f" ({', '.join(tags)})" if tags else "")

    st.selectbox("Flags of epoch", epochs, key=key, format_func=label, on_change=safe_callback(_remember_epoch),
                 args=(run_id, key), help=f"Whose flags and scores are shown and exported. Recommended: {why}.")
    return int(ss[key]), recommended, why


def run_with_epochs(store: Store, no_dataset: str, no_run: str, no_epoch: str) -> tuple[dict, list[dict]] | None:
    """The selected run and its epoch summaries, for a page that shows a finished epoch;
    None after saying (in the given words) what to do first, with a link there."""
    if selected_dataset(store) is None:
        st.info(no_dataset)
        st.page_link(PAGE_DATA, label="Go to Data", icon=PAGE_ICONS["data"])
        return None
    run = selected_run(store)
    if run is None:
        st.info(no_run)
        st.page_link(PAGE_TRAIN, label="Go to Train", icon=PAGE_ICONS["train"])
        return None
    summaries = store.list_epoch_summaries(run["id"])
    if not summaries:
        st.info(no_epoch)
        st.page_link(PAGE_TRAIN, label="Go to Train", icon=PAGE_ICONS["train"])
        return None
    return run, summaries


def epoch_view(store: Store, run: dict, summaries: list[dict], key: str, mismatch: str):
    """The epoch picker (`key`) and what a page shows of the picked epoch: (epoch, report,
    dataset, label names, review_frame with the run's current decisions); None after
    showing `mismatch` when the report and the dataset differ in size."""
    from selfmix_core.review import review_frame

    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    with c1:
        epoch, _recommended, why = epoch_picker(summaries, run["id"], key=key)
    c2.caption(f"Recommended: {why}.")
    summary = next(s for s in summaries if int(s["epoch"]) == epoch)
    report = load_report(store, run["id"], epoch, token=summary.get("seconds"))
    ds = load_dataset(store, run["dataset_id"])
    names = list(ds.label_names)
    if len(ds) != len(report.clean_prob):
        st.error(mismatch)
        return None
    df = review_frame(ds.texts, report, names, store.current_decisions(run["id"]), given_labels=ds.labels)
    return epoch, report, ds, names, df


def true_labels_for(dataset) -> np.ndarray | None:
    return None if dataset.true_labels is None else np.asarray(dataset.true_labels)


@st.cache_resource(show_spinner=False)
def device_text() -> str:
    """The device a run with device="auto" uses: the GPU's name, or the CPU."""
    try:
        from selfmix_core.trainer import device_description, resolve_device

        return device_description(resolve_device("auto"))
    except Exception as exc:  # torch missing or broken: say so instead of failing the page
        return f"unknown ({exc})"


def default_model() -> str:
    """The model the Train page proposes: $SELFMIX_DEFAULT_MODEL, else "" (bundled MiniLM)."""
    return os.environ.get(MODEL_ENV, "").strip()


# ---- small rendering helpers ---------------------------------------------------------------------


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def safe_callback(fn: Callable[..., None]) -> Callable[..., None]:
    """Wrap a widget callback: callbacks run before the page (outside guard()), so an
    error is kept and shown as a message on the page instead of a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            import logging

            logging.getLogger("selfmix_studio").exception("callback failed")
            st.session_state.setdefault("_callback_errors", []).append(f"{type(exc).__name__}: {exc}")

    return wrapper


def guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """Wrap a fragment body: its reruns bypass the page's guard(), so it gets its own."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> None:
        guard(lambda: fn(*args, **kwargs))

    return wrapper


def guard(main: Callable[[], None]) -> None:
    """Run a page's main(); an unexpected error becomes a short message, not a traceback
    (the details go to the server log)."""
    try:
        main()
    except Exception as exc:  # st.stop / st.rerun are BaseExceptions and pass through
        import logging

        logging.getLogger("selfmix_studio").exception("page failed")
        st.error(
            f"Something went wrong on this page: {type(exc).__name__}: {md(exc)}. Your data and review "
            "decisions are saved; reload the page to continue. (Details are in the terminal running the app.)"
        )
