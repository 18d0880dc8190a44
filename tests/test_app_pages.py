"""Every page through streamlit.testing.v1.AppTest: empty states, the Data page (upload,
validation messages, noise, save), the Train page (start a run with the tiny model,
charts, pause/resume/stop controls, errors), the Review page (relabel, undo, bulk
accept) and the Export page (download buttons and their bytes)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from selfmix_core.explore import find_issues, issue_columns
from selfmix_core.export import build_cleaned_frame
from selfmix_core.reports import EpochReport, GMMParams
from selfmix_core.store import Store
from studio import worker
from studio.state import QP_RUN, SELECTED_DATASET, SELECTED_RUN
from tests.reliability_helpers import unescaped
from tests.tiny_model import tiny_config, tiny_frame, tiny_model_dir

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = {"data": "pages/1_Data.py", "train": "pages/2_Train.py", "review": "pages/3_Review.py",
         "export": "pages/4_Export.py"}
TIMEOUT = 60
NAMES = ["colour", "fruit", "vehicle"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture
def home(tmp_path, monkeypatch, model_dir):
    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SELFMIX_DEFAULT_MODEL", str(model_dir))
    return tmp_path / "home"


@pytest.fixture
def store(home):
    s = Store(home)
    yield s
    s.close()


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    """The elements' Markdown as the person reads it (studio.text.md's escapes taken out)."""
    return [unescaped(e.value) for e in elements]


def joined(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        parts += [unescaped(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def add_tiny_dataset(store: Store, n: int = 40, noisy: bool = True, edit=None) -> str:
    """The tiny data as a stored dataset; `edit(frame)` may change the frame (after the
    noise) before it is stored."""
    frame = tiny_frame(n)
    meta = {"text_column": "text", "label_column": "label", "true_label_column": None, "label_names": NAMES}
    if noisy:  # flip every 5th label to the next class; keep the originals
        frame["true_label"] = frame["label"]
        idx = np.arange(0, n, 5)
        frame.loc[idx, "label"] = [NAMES[(NAMES.index(v) + 1) % 3] for v in frame.loc[idx, "label"]]
        meta["true_label_column"] = "true_label"
    if edit is not None:
        edit(frame)
    return store.add_dataset("tiny", frame, meta)


def hand_report(store: Store, run_id: str, n: int = 40, epoch: int = 1) -> EpochReport:
    """Save a report with known scores: sample i has clean_prob i/n, the model suggests the
    next class for every sample (so flagged = samples 0..n/2-1, most suspicious = 0)."""
    ds_frame = store.load_dataset_frame(store.get_run(run_id)["dataset_id"])
    given = np.array([NAMES.index(v) for v in ds_frame["label"]])
    clean = np.arange(n) / n
    report = EpochReport(
        epoch=epoch, phase="warmup", seconds=1.0, train_seconds=0.5, score_seconds=0.5, samples_trained=n,
        losses={"ce": 1.0}, given_label=given, loss=1 - clean, norm_loss=1 - clean, clean_prob=clean,
        predicted_label=(given + 1) % 3, predicted_prob=np.full(n, 0.8), in_training=np.ones(n, bool),
        gmm=GMMParams((0.2, 0.8), (0.1, 0.1), (0.5, 0.5), 0, True, 3, 6.0), tau=0.5, n_clean=n // 2,
        n_noisy=n // 2, given_vs_predicted=np.eye(3, dtype=np.int64),
    )
    store.save_epoch_report(run_id, report)
    store.set_run_status(run_id, "finished")
    return report


def reviewed_run(store: Store) -> str:
    ds = add_tiny_dataset(store)
    run_id = store.create_run(ds, {"epochs": 1, "selection": {"tau": 0.5}}, name="hand")
    hand_report(store, run_id)
    return run_id


# ---- empty states -----------------------------------------------------------------------------


@pytest.mark.parametrize("page,expect", [
    (None, "No dataset yet"),
    ("data", "No table loaded yet"),
    ("train", "No dataset yet: go to **Data**"),
    ("review", "No dataset yet: go to **Data**"),
    ("export", "No dataset yet: go to **Data**"),
])
def test_every_page_says_what_to_do_first(home, page, expect):
    at = open_app(page)
    assert any(expect in m for m in texts(at.info)), texts(at.info)
    assert not at.error


def test_pages_with_a_dataset_but_no_run(store):
    add_tiny_dataset(store)
    for page, expect in (("train", "No run on this dataset yet"), ("review", "No run yet: go to **Train**"),
                         ("export", "No run yet: go to **Train**")):
        at = open_app(page)
        assert any(expect in m for m in texts(at.info)), (page, texts(at.info))
    at = open_app()
    assert any("No run yet" in m for m in texts(at.info))


# ---- home ------------------------------------------------------------------------------------------


def test_home_lists_runs_and_reopens_one(store):
    run_id = reviewed_run(store)
    at = open_app()
    body = joined(at)
    assert "SelfMix Studio" in body and "hand" in body and "finished" in body
    assert at.query_params.get(QP_RUN) == run_id  # the newest run is selected and in the URL
    at.button(key=f"home_review_{run_id}").click().run()
    assert not at.exception
    assert at.title[0].value == "Review"


def test_url_selects_the_run_in_a_fresh_session(store):
    first = reviewed_run(store)
    second = reviewed_run(store)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params[QP_RUN] = first  # a reload / second tab with the run in its URL
    at.run()
    assert at.session_state[SELECTED_RUN] == first != second
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params[QP_RUN] = "feedfeedfeed"
    at.run()
    assert any("does not exist" in w for w in texts(at.warning))
    assert at.session_state[SELECTED_RUN] == second


def test_run_picker_choice_survives_a_status_change(store):
    """The browser sends back the TEXT of the option it shows, and keeps the text it had
    when a rerun changes the options' texts; Streamlit maps the text to the option, and
    an unknown text comes through as the text itself. A run's epoch ends between the
    render the person sees and their pick: the pick selects the run and its id -- not a
    text -- lands in ?run=, so a reload shows it. The live status is beside the picker."""
    ds = add_tiny_dataset(store)
    first = store.create_run(ds, {"epochs": 2, "selection": {"tau": 0.5}}, name="first")
    second = store.create_run(ds, {"epochs": 2, "selection": {"tau": 0.5}}, name="second")
    at = open_app()
    assert at.session_state[SELECTED_RUN] == second  # the newest
    seen = at.selectbox(key="nav_run")  # the picker as the browser shows it
    shown = seen.format_func(first)
    hand_report(store, first)  # meanwhile epoch 1 of 2 is saved and the run finishes...
    at.run()  # ...and the page reruns (e.g. the Train page's poll)
    seen.set_value(shown).run()  # the person picks the first run: the browser sends the text it shows
    assert not at.exception and not at.error
    assert at.session_state[SELECTED_RUN] == first and at.query_params[QP_RUN] == first
    assert any("finished · epoch 1/2" in c for c in texts(at.sidebar.caption))
    reload = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reload.query_params[QP_RUN] = at.query_params[QP_RUN]
    reload.run()
    assert reload.session_state[SELECTED_RUN] == first and not reload.warning


def test_picker_texts_tell_runs_and_datasets_of_the_same_name_apart(store):
    ds1 = add_tiny_dataset(store)
    ds2 = add_tiny_dataset(store)  # also "tiny", 40 rows
    a = store.create_run(ds2, {"epochs": 1}, name="same")
    b = store.create_run(ds2, {"epochs": 1}, name="same")
    at = open_app("train")
    datasets = at.selectbox(key="nav_dataset")
    assert len(set(datasets.options)) == 2 and all(o.startswith("tiny (40 rows)") for o in datasets.options)
    runs = at.selectbox(key="nav_run")
    assert len(set(runs.options)) == 2 and all(o.startswith("same · ") for o in runs.options)
    runs.set_value(runs.format_func(a)).run()
    assert at.session_state[SELECTED_RUN] == a != b
    datasets.set_value(datasets.format_func(ds1)).run()
    assert at.session_state[SELECTED_DATASET] == ds1


# ---- data ---------------------------------------------------------------------------------------------


def test_data_upload_noise_and_save(store):
    at = open_app("data")
    at.file_uploader(key="data_upload").upload("tiny.csv", tiny_frame(40).to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_text_col").value == "text"
    assert at.selectbox(key="data_label_col").value == "label"
    assert any("40 texts, 3 classes" in s for s in texts(at.success))
    assert at.text_input(key="data_name").value == "tiny"
    at.toggle(key="data_noise_on").set_value(True).run()
    at.selectbox(key="data_noise_kind").set_value("asym").run()
    at.slider(key="data_noise_rate").set_value(0.25).run()
    at.text_input(key="data_name").input("my tiny set").run()
    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    assert any("Saved **my tiny set**" in s and "10 labels flipped" in s for s in texts(at.success))
    [d] = store.list_datasets()
    assert at.session_state[SELECTED_DATASET] == d["id"] and at.query_params["dataset"] == d["id"]
    meta = d["meta"]
    assert meta["noise"]["kind"] == "asym" and meta["noise"]["n_flipped"] == 10
    assert meta["true_label_column"] == "true_label" and meta["label_names"] == NAMES
    frame = store.load_dataset_frame(d["id"])
    assert list(frame.columns) == ["text", "label", "true_label"]
    assert (frame["label"] != frame["true_label"]).sum() == 10
    assert (frame["true_label"] == tiny_frame(40)["label"]).all()


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_data_upload_other_formats(home, fmt):
    frame = tiny_frame(12)
    if fmt == "tsv":
        data = frame.to_csv(sep="\t", index=False).encode()
    elif fmt == "jsonl":
        data = frame.to_json(orient="records", lines=True).encode()
    else:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        data = buf.getvalue()
    at = open_app("data")
    at.file_uploader(key="data_upload").upload(f"t.{fmt}", data)
    at.run()
    assert not at.exception and not at.error
    assert any("12 texts, 3 classes" in s for s in texts(at.success))


def test_data_big_upload_is_read_in_the_background(home, monkeypatch):
    from studio import uploads

    monkeypatch.setattr(uploads, "SYNC_PARSE_BYTES", 10)  # every upload counts as big
    at = open_app("data")
    at.file_uploader(key="data_upload").upload("big.csv", tiny_frame(12).to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception
    for _ in range(100):
        if any("12 texts, 3 classes" in s for s in texts(at.success)):
            break
        assert any("in the background" in m for m in texts(at.info)) or not at.info
        time.sleep(0.1)
        at.run()
    assert any("12 texts, 3 classes" in s for s in texts(at.success))
    # a big file that fails to parse reports the reader's message
    at.file_uploader(key="data_upload").upload("big.jsonl", b"{not json}\n", "application/json")
    at.run()
    for _ in range(100):
        if at.error:
            break
        time.sleep(0.1)
        at.run()
    assert not at.exception and any("JSONL could not be parsed" in e for e in texts(at.error))


def test_data_validation_messages_not_tracebacks(home):
    at = open_app("data")
    bad = "text,label\nhello,a\n,b\nworld,\n".encode()
    at.file_uploader(key="data_upload").upload("bad.csv", bad, "text/csv")
    at.run()
    assert not at.exception
    err = "\n".join(texts(at.error))
    assert "cannot be used as it is" in err and "empty" in err and "row 2" in err
    assert "Traceback" not in err
    # a file that is not UTF-8 fails in the reader, with its own message
    at.file_uploader(key="data_upload").upload("latin.csv", "text,label\ncaf\xe9,a\n".encode("latin-1"), "text/csv")
    at.run()
    assert not at.exception and "not valid UTF-8" in "\n".join(texts(at.error))
    # the same column for text and label
    at.file_uploader(key="data_upload").upload("ok.csv", tiny_frame(9).to_csv(index=False).encode(), "text/csv")
    at.run()
    at.selectbox(key="data_label_col").set_value("text").run()
    assert not at.exception and any("different columns" in e for e in texts(at.error))


def test_data_test_set_is_saved_alongside(store):
    at = open_app("data")
    at.file_uploader(key="data_upload").upload("train.csv", tiny_frame(30).to_csv(index=False).encode(), "text/csv")
    at.run()
    at.file_uploader(key="data_test_upload").upload("test.csv", tiny_frame(9, seed=1).to_csv(index=False).encode(), "text/csv")
    at.run()
    assert any("Test set test.csv: 9 texts" in s for s in texts(at.success))
    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    datasets = store.list_datasets()
    assert len(datasets) == 2
    train = next(d for d in datasets if d["meta"].get("role") != "test")
    assert train["meta"]["test_dataset_id"] in {d["id"] for d in datasets}
    at = open_app("data")  # the test set is not offered as a dataset of its own
    assert [o for o in at.selectbox(key="nav_dataset").options] == [train["name"] + " (30 rows)"]


def test_load_demo_applies_the_preset(store, home):
    """A stand-in for the cached demo file (same columns as the real one): Load demo
    draws 1,000 rows and turns on 20% symmetric noise, Save keeps the true labels."""
    import bz2

    from selfmix_core.demo import DEMO_SOURCE, demo_cache_path

    rows = [{"category": c, "text": f"{c} text number {i}", "movie_name": "m"}
            for i, c in enumerate(["fresh"] * 700 + ["rotten"] * 500 + ["plot"] * 100)]
    path = demo_cache_path(home)
    path.parent.mkdir(parents=True)
    path.write_bytes(bz2.compress(pd.DataFrame(rows).to_csv(index=False).encode()))
    at = open_app("data")
    assert not at.code or all("demo fetch" not in c.value for c in at.code)
    at.button(key="data_load_demo").click().run()
    assert not at.exception and not at.error
    assert any("1,000 texts, 3 classes" in s for s in texts(at.success))
    assert at.toggle(key="data_noise_on").value is True
    assert at.selectbox(key="data_noise_kind").value == "sym" and at.slider(key="data_noise_rate").value == 0.2
    assert DEMO_SOURCE[:40] in joined(at)
    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    [d] = store.list_datasets()
    assert d["n_rows"] == 1000 and d["meta"]["noise"]["n_flipped"] == 200 and d["meta"]["origin"] == "demo"
    assert d["name"].startswith("Rotten Tomatoes demo")


def test_demo_not_fetched_shows_the_command(home):
    at = open_app("data")
    assert any("python -m selfmix_core.demo fetch" in c.value for c in at.code)
    at.button(key="data_load_demo").click().run()
    assert not at.exception
    assert any("python -m selfmix_core.demo fetch" in e for e in texts(at.error))


# ---- train ---------------------------------------------------------------------------------------------


def wait_done(run_id: str) -> None:
    assert worker.wait(run_id, 180), "training did not finish"


def test_train_page_starts_a_run_with_the_tiny_model_and_draws_charts(store, model_dir):
    add_tiny_dataset(store)
    at = open_app("train")
    assert at.text_input(key="train_model").value == str(model_dir)  # $SELFMIX_DEFAULT_MODEL
    assert at.number_input(key="train_epochs").value == 6 and at.number_input(key="train_tau").value == 0.5
    assert at.number_input(key="train_val_fraction").value == 0.1  # the label-free rule is on by default
    assert at.number_input(key="train_extra_warmup").value == 4
    assert "Device:" in joined(at)
    at.number_input(key="train_extra_warmup").set_value(2)
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_warmup").set_value(1)
    at.number_input(key="train_batch").set_value(8)
    at.number_input(key="train_max_length").set_value(16)
    at.text_input(key="train_name").input("ui run")
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state[SELECTED_RUN]
    assert at.query_params[QP_RUN] == run_id
    wait_done(run_id)
    run = store.get_run(run_id)
    assert run["status"] == "finished", run["error"]
    assert run["name"] == "ui run" and run["config"]["model"]["max_length"] == 16
    assert run["config"]["validation"]["fraction"] == 0.1 and run["config"]["extra_warmup_epochs"] == 2
    at.run()
    assert not at.exception and not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 6  # histograms, given x predicted and given x true heatmaps, accuracy, losses, |X|/|U|
    assert any("given × predicted reads P(predicted | given)" in c and "Neither is the noise transition" in c
               for c in texts(at.caption))
    assert any("finished" in m for m in texts(at.markdown))
    assert [m.label for m in at.metric][:3] == ["Epoch", "|X| looks clean", "|U| flagged"]
    assert at.metric[-1].label == "Flip detection AUROC"  # true labels are known (no test set: no test accuracy)
    at.select_slider(key=f"train_epoch_{run_id}").set_value(1).run()
    assert not at.exception and len(at.get("plotly_chart")) == 6


def test_train_page_estimates_time_suggests_max_length_and_trains_on_a_sample(store, model_dir):
    ds = add_tiny_dataset(store, n=60)
    at = open_app("train")
    assert any("Suggested max length: **8** tokens" in c for c in texts(at.caption))  # "the" + 4 words + 2 specials
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_warmup").set_value(1)
    at.number_input(key="train_batch").set_value(8)
    at.number_input(key="train_max_length").set_value(16)
    at.selectbox(key="train_device").set_value("cpu")
    at.checkbox(key="train_sample_on").check()
    at.number_input(key="train_sample_n").set_value(30)
    at.button(key="FormSubmitter:train_form-Estimate time").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [estimate] = [m for m in texts(at.info) if m.startswith("Estimated:")]
    assert "for the 2 epochs on 30 texts" in estimate and "3 timed steps of batch 8" in estimate
    assert store.list_runs() == []  # estimating starts nothing
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error
    run = store.get_run(at.session_state[SELECTED_RUN])
    sub = store.get_dataset(run["dataset_id"])
    assert sub["id"] != ds and sub["n_rows"] == 30 and sub["meta"]["sample_of"] == ds
    assert sub["name"] == "tiny (sample of 30)"
    assert store.load_dataset_frame(sub["id"])["label"].value_counts().to_dict() == \
        store.load_dataset_frame(ds)["label"].value_counts().floordiv(2).to_dict()  # the proportions kept
    wait_done(run["id"])
    assert store.get_run(run["id"])["status"] == "finished"
    assert store.load_epoch_report(run["id"], 1).clean_prob.shape == (30,)


def test_settings_survive_a_visit_to_another_page(home):
    at = open_app("data")
    at.file_uploader(key="data_upload").upload("tiny.csv", tiny_frame(40).to_csv(index=False).encode(), "text/csv")
    at.run()
    at.toggle(key="data_noise_on").set_value(True).run()
    at.slider(key="data_noise_rate").set_value(0.35).run()
    at.switch_page(PAGES["train"]).run()
    at.switch_page(PAGES["data"]).run()
    assert not at.exception
    assert at.toggle(key="data_noise_on").value is True and at.slider(key="data_noise_rate").value == 0.35


def test_train_page_settings_errors_are_messages(store):
    add_tiny_dataset(store)
    at = open_app("train")
    at.number_input(key="train_epochs").set_value(2)
    at.number_input(key="train_warmup").set_value(2)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception
    assert any("Cannot start" in e and "warmup_epochs" in e for e in texts(at.error))
    at.text_input(key="train_model").input("./no/such/folder")
    at.number_input(key="train_warmup").set_value(1)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert any("does not exist" in e for e in texts(at.error))
    assert store.list_runs() == []


def test_train_page_pause_resume_and_stop(store, model_dir):
    ds = add_tiny_dataset(store)
    run_id = store.create_run(ds, tiny_config(model_dir, epochs=3, warmup=1))
    worker.start_run(store, run_id)
    worker.request(store, run_id, "pause")
    end = time.monotonic() + 120
    while store.get_run(run_id)["status"] != "paused" and time.monotonic() < end:
        time.sleep(0.05)
    at = open_app("train")
    assert any("Paused after epoch 1" in m for m in texts(at.info))
    assert len(at.get("plotly_chart")) == 6
    at.button(key="train_resume").click().run()
    assert not at.exception
    wait_done(run_id)
    assert store.get_run(run_id)["status"] == "finished"
    at.run()
    assert not [b for b in at.button if b.key in ("train_pause", "train_resume", "train_stop")]

    # a stopped run with a checkpoint can be resumed from it
    run2 = store.create_run(ds, tiny_config(model_dir, epochs=3, warmup=1))
    worker.start_run(store, run2)
    worker.request(store, run2, "pause")
    while store.get_run(run2)["status"] != "paused" and time.monotonic() < end + 60:
        time.sleep(0.05)
    at.run()
    assert at.session_state[SELECTED_RUN] == run_id  # the person's choice stays
    at = open_app("train")  # a fresh session shows the newest run
    assert at.session_state[SELECTED_RUN] == run2
    at.button(key="train_stop").click().run()
    wait_done(run2)
    assert store.get_run(run2)["status"] == "stopped"
    at.run()
    at.button(key="train_resume_ckpt").click().run()
    assert not at.exception
    wait_done(run2)
    assert store.get_run(run2)["status"] == "finished"
    assert store.get_run(run2)["epochs_done"] == 3


def test_train_page_stop_asks_now_or_after_this_epoch(store, model_dir):
    ds = add_tiny_dataset(store)
    run_id = store.create_run(ds, tiny_config(model_dir, epochs=4, warmup=1))
    worker.start_run(store, run_id)
    end = time.monotonic() + 120
    while store.get_run(run_id)["status"] != "running" and time.monotonic() < end:
        time.sleep(0.02)
    at = open_app("train")
    assert at.button(key="train_stop").label == "Stop now" and "lost" in at.button(key="train_stop").help
    at.button(key="train_stop_after").click().run()
    assert not at.exception
    said = any("Stopping when this epoch ends" in m for m in texts(at.info))
    assert said or store.get_run(run_id)["status"] != "running"  # (unless the epoch ended meanwhile)
    wait_done(run_id)
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and 1 <= run["epochs_done"] < 4
    assert len(store.list_epoch_summaries(run_id)) == run["epochs_done"]  # the epoch it was in was kept


def test_train_page_shows_a_failed_run_with_its_message(store, tmp_path):
    ds = add_tiny_dataset(store)
    run_id = store.create_run(ds, tiny_config(tmp_path / "missing-model"))
    worker.start_run(store, run_id)
    wait_done(run_id)
    at = open_app("train")
    assert not at.exception
    assert any("Training failed" in e and "does not exist" in e for e in texts(at.error))


# ---- review ---------------------------------------------------------------------------------------------


def set_decision(at: AppTest, row: int, choice: str) -> None:
    key = at.session_state["review_editor_key"]
    at.session_state[key] = {"edited_rows": {row: {"decision": choice}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_review_relabel_undo_and_bulk_accept(store):
    run_id = reviewed_run(store)
    at = open_app("review")
    assert not at.error
    assert any("Reviewed 0 / 20 flagged" in (p.proto.text or "") for p in at.get("progress"))
    shown = at.dataframe[0].value
    assert list(shown["sample"][:3]) == [0, 1, 2]  # most likely wrong first
    assert len(shown) == 20  # the 20 flagged samples (page size 25)
    # relabel sample 0 by hand
    set_decision(at, 0, "label: colour")
    given0 = NAMES.index(store.load_dataset_frame(store.get_run(run_id)["dataset_id"])["label"][0])
    d = store.current_decisions(run_id)
    assert list(d) == [0] and d[0]["action"] in ("relabel", "keep")
    assert d[0]["new_label"] == 0 and d[0]["old_label"] == given0
    assert any("Saved 1 decision" in s for s in texts(at.success))
    # drop sample 1, then undo it
    set_decision(at, 1, "drop sample")
    assert store.current_decisions(run_id)[1]["action"] == "drop"
    at.button(key="review_undo").click().run()
    assert set(store.current_decisions(run_id)) == {0}
    # bulk accept: every undecided flagged sample whose suggestion differs (all 19 others)
    at.text_input(key="review_query").input("the").run()
    assert "19 undecided" in at.button(key="review_bulk").label
    at.button(key="review_bulk").click().run()
    d = store.current_decisions(run_id)
    assert len(d) == 20 and all(v["action"] == "accept" for k, v in d.items() if k != 0)
    assert any("Reviewed 20 / 20 flagged" in (p.proto.text or "") for p in at.get("progress"))
    # the whole bulk action is undone at once, nothing is lost on reload
    at.button(key="review_undo").click().run()
    assert set(store.current_decisions(run_id)) == {0}
    at = open_app("review")
    assert any("Reviewed 1 / 20 flagged" in (p.proto.text or "") for p in at.get("progress"))


def one_at_a_time_button(at: AppTest, prefix: str):
    [b] = [b for b in at.button if (b.key or "").startswith(prefix)]
    return b


def test_review_one_sample_at_a_time(store):
    run_id = reviewed_run(store)
    ds_frame = store.load_dataset_frame(store.get_run(run_id)["dataset_id"])
    at = open_app("review")
    focus = [s for s in at.selectbox if (s.key or "").startswith("review_focus_")]
    assert len(focus) == 1 and focus[0].value == 0  # the page's first (most suspicious) sample
    # keep sample 0's given label: the panel moves on to the next undecided sample, 1
    one_at_a_time_button(at, "review_one_keep_").click().run()
    assert not at.exception
    d = store.current_decisions(run_id)
    assert list(d) == [0] and d[0]["action"] == "keep" and d[0]["new_label"] == d[0]["old_label"]
    assert [s.value for s in at.selectbox if (s.key or "").startswith("review_focus_")] == [1]
    # relabel sample 1 to a class chosen by name (not the given one)
    given1 = str(ds_frame["label"][1])
    target = next(n for n in NAMES if n != given1)
    [pick] = [s for s in at.selectbox if (s.key or "").startswith("review_one_label_")]
    assert given1 not in pick.options
    pick.set_value(target).run()
    one_at_a_time_button(at, "review_one_relabel_").click().run()
    d = store.current_decisions(run_id)
    assert d[1]["action"] == "relabel" and d[1]["new_label"] == NAMES.index(target)
    assert d[1]["old_label"] == NAMES.index(given1)
    # drop sample 2, then undo takes back exactly that one
    one_at_a_time_button(at, "review_one_drop_").click().run()
    assert store.current_decisions(run_id)[2]["action"] == "drop"
    at.button(key="review_undo").click().run()
    assert set(store.current_decisions(run_id)) == {0, 1}
    # accept the suggestion of the next undecided sample (2 again)
    row = at.dataframe[0].value.iloc[2]
    accept = one_at_a_time_button(at, "review_one_accept_")
    if row["suggested"] == row["given"]:
        assert accept.disabled
    else:
        accept.click().run()
        d = store.current_decisions(run_id)
        assert d[2]["action"] == "accept" and d[2]["new_label"] == NAMES.index(row["suggested"])
    assert any("Reviewed" in (p.proto.text or "") for p in at.get("progress"))


def test_review_panel_pick_survives_another_tabs_decision(store):
    """The one-at-a-time panel's sample picker: another tab decides sample 1 between this
    tab's render and its pick of sample 1 (the browser sends the text it showed): the
    panel opens sample 1, no error."""
    run_id = reviewed_run(store)
    at = open_app("review")
    [seen] = [s for s in at.selectbox if (s.key or "").startswith("review_focus_")]
    shown = seen.options[1]
    assert shown.startswith("#1 ")
    store.add_decision(run_id, 1, 0, None, "drop")  # another tab
    at.run()
    seen.set_value(shown).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.selectbox if (s.key or "").startswith("review_focus_")] == [1]
    assert any(m.startswith("**#1** ") for m in texts(at.markdown))

def focus_sample(at: AppTest) -> int:
    [s] = [s for s in at.selectbox if (s.key or "").startswith("review_focus_")]
    return int(at.dataframe[0].value["sample"].iloc[s.value])


def test_undo_takes_back_this_tabs_decision_not_another_tabs(store):
    """Two tabs on one run: A drops one sample, B drops another, A undoes: A's drop is
    undone, B's stays, and A is told which sample. A has nothing more of its own to undo;
    after a reload, "Undo another…" lists the decisions and takes back the one picked."""
    run_id = reviewed_run(store)
    tab_a, tab_b = open_app("review"), open_app("review")
    a_sample = focus_sample(tab_a)
    one_at_a_time_button(tab_a, "review_one_drop_").click().run()
    [panel_b] = [s for s in tab_b.selectbox if (s.key or "").startswith("review_focus_")]
    panel_b.set_value(1).run()  # B opens another sample
    b_sample = focus_sample(tab_b)
    assert b_sample != a_sample
    one_at_a_time_button(tab_b, "review_one_drop_").click().run()
    assert set(store.current_decisions(run_id)) == {a_sample, b_sample}
    tab_a.button(key="review_undo").click().run()
    assert not tab_a.exception
    assert set(store.current_decisions(run_id)) == {b_sample}  # B's decision stays
    assert f"Undid the drop on sample #{a_sample}." in texts(tab_a.success)
    assert tab_a.button(key="review_undo").disabled  # nothing of A's left
    # a reloaded tab has made no decision; it picks one to undo (here B's)
    reloaded = open_app("review")
    assert reloaded.button(key="review_undo").disabled
    pick = reloaded.selectbox(key="review_undo_pick")
    assert pick.value == store.current_decisions(run_id)[b_sample]["decision_id"]
    assert f"drop sample #{b_sample}" in pick.format_func(pick.value) and "another tab" in pick.format_func(pick.value)
    reloaded.button(key="review_undo_other").click().run()
    assert store.current_decisions(run_id) == {}
    assert f"Undid the drop on sample #{b_sample}." in texts(reloaded.success)


def test_a_tab_showing_a_stale_decision_does_not_overwrite_it(store):
    """Two tabs show sample 0 undecided; A keeps its label; B, not rerun since, drops it:
    B is told the sample changed meanwhile and what it is now; A's decision stays. Now
    showing it, B may replace it. The same for an edit in the table and a bulk accept."""
    run_id = reviewed_run(store)
    tab_a, tab_b = open_app("review"), open_app("review")
    assert focus_sample(tab_a) == focus_sample(tab_b) == 0
    one_at_a_time_button(tab_a, "review_one_keep_").click().run()
    one_at_a_time_button(tab_b, "review_one_drop_").click().run()  # B still shows 0 undecided
    assert not tab_b.exception and not tab_b.error
    assert store.current_decisions(run_id)[0]["action"] == "keep"
    assert any("Sample #0 was changed in another tab" in w and "it is now: keep" in w for w in texts(tab_b.warning))
    assert focus_sample(tab_b) == 0  # the panel stays on the sample, showing A's decision now
    assert any(m.startswith("**#0**") and "your decision: *keep given label*" in m for m in texts(tab_b.markdown))
    one_at_a_time_button(tab_b, "review_one_drop_").click().run()
    assert store.current_decisions(run_id)[0]["action"] == "drop" and not tab_b.warning
    # the table: A relabels sample 1; B, still showing it undecided, edits it
    set_decision(tab_a, 1, "drop sample")
    set_decision(tab_b, 1, "keep given label")
    assert store.current_decisions(run_id)[1]["action"] == "drop"
    assert any("Sample #1 was changed in another tab" in w for w in texts(tab_b.warning))
    # bulk accept over samples one of which A has decided meanwhile: nothing is written
    tab_b.run()
    one_at_a_time_button(tab_a, "review_one_keep_").click().run()  # A keeps sample 2
    before = len(store.decision_log(run_id))
    tab_b.button(key="review_bulk").click().run()
    assert len(store.decision_log(run_id)) == before
    assert any("Sample #2 was changed in another tab" in w for w in texts(tab_b.warning))
    tab_b.button(key="review_bulk").click().run()  # now showing the current decisions
    assert len(store.current_decisions(run_id)) == 20

def test_review_filters(store):
    reviewed_run(store)
    at = open_app("review")
    at.multiselect(key="review_given").set_value(["fruit"]).run()
    rows = at.dataframe[0].value
    assert set(rows["given"]) == {"fruit"}
    at.slider(key="review_score").set_value((0.0, 0.5)).run()  # on the label score
    rows = at.dataframe[0].value
    assert (rows["label score"] <= 0.5).all() and len(rows) >= 1
    at.text_input(key="review_query").input("zzzz-no-match").run()
    assert any("No sample matches" in m for m in texts(at.info))


def test_review_sorts_by_label_score_and_keeps_uncertain_apart(store, monkeypatch):
    """The GMM posterior saturates at 0 for all flagged rows: the table is in label-score
    order (exp(-loss)), shows it and clean prob.; flagged samples suggested their own label
    are 'uncertain', with a filter of their own; the panel shows the top-3 labels."""
    ds = add_tiny_dataset(store)
    run_id = store.create_run(ds, {"epochs": 1}, name="sat")
    report = hand_report(store, run_id)
    n = 40
    rng = np.random.default_rng(0)
    report.clean_prob = np.where(np.arange(n) < 20, 0.0, 0.9)
    report.loss = rng.uniform(0.1, 4.0, n)
    report.predicted_label = np.where(np.arange(n) % 4 == 0, report.given_label, (report.given_label + 1) % 3)
    report.top3_label = np.stack([report.predicted_label, (report.predicted_label + 1) % 3,
                                  (report.predicted_label + 2) % 3], axis=1)
    report.top3_prob = np.tile([0.6, 0.3, 0.1], (n, 1))
    store.save_epoch_report(run_id, report)
    load = Store.load_epoch_report

    def with_top3(self, *args, **kwargs):  # a report with top-3 arrays (not stored in every version)
        got = load(self, *args, **kwargs)
        got.top3_label, got.top3_prob = report.top3_label, report.top3_prob
        return got

    monkeypatch.setattr(Store, "load_epoch_report", with_top3)
    at = open_app("review")
    assert not at.exception, [e.value for e in at.exception]
    rows = at.dataframe[0].value
    assert list(rows["label score"]) == sorted(rows["label score"]) and rows["label score"].nunique() == 20
    assert (rows["clean prob"] == 0.0).all()
    assert set(rows["status"]) == {"likely mislabeled", "uncertain"}
    assert (rows["status"] == "uncertain").sum() == 5 and "5 uncertain" in joined(at)
    at.radio(key="review_status").set_value("uncertain").run()
    rows = at.dataframe[0].value
    assert len(rows) == 5 and (rows["given"] == rows["suggested"]).all()
    assert "The model's top labels:" in joined(at) and "60%" in joined(at) and "Uncertain:" in joined(at)
    # the relabel picker opens on the model's second choice (its first is the given label)
    [pick] = [s for s in at.selectbox if (s.key or "").startswith("review_one_label_")]
    first = int(rows["sample"].iloc[0])
    assert pick.value == NAMES[int(report.top3_label[first, 1])]
    at.radio(key="review_status").set_value("likely mislabeled").run()
    rows = at.dataframe[0].value
    assert len(rows) == 15 and (rows["given"] != rows["suggested"]).all()


def test_review_panel_full_names_shortcuts_and_next(store):
    reviewed_run(store)
    at = open_app("review")
    accept = one_at_a_time_button(at, "review_one_accept_")
    row = at.dataframe[0].value.iloc[0]
    assert accept.label.endswith(row["suggested"]) and row["suggested"] in accept.help  # the full name
    shortcuts = {p: one_at_a_time_button(at, p).proto.shortcut for p in
                 ("review_one_accept_", "review_one_keep_", "review_one_drop_", "review_one_next_")}
    assert all(shortcuts.values()), shortcuts
    assert len(set(shortcuts.values())) == 4
    one_at_a_time_button(at, "review_one_next_").click().run()
    assert not at.exception and focus_sample(at) == 1
    one_at_a_time_button(at, "review_one_next_").click().run()
    assert focus_sample(at) == 2 and not at.warning


def test_bulk_accept_of_more_than_20_asks_once(store):
    ds = add_tiny_dataset(store, n=60)
    run_id = store.create_run(ds, {"epochs": 1}, name="bulk")
    hand_report(store, run_id, n=60)  # 30 flagged
    at = open_app("review")
    at.button(key="review_bulk").click().run()
    assert store.current_decisions(run_id) == {}  # asked, nothing saved yet
    assert any("Relabel 30 samples" in w for w in texts(at.warning))
    at.button(key="review_bulk_no").click().run()
    assert store.current_decisions(run_id) == {} and not at.warning
    at.button(key="review_bulk").click().run()
    at.button(key="review_bulk_yes").click().run()
    assert len(store.current_decisions(run_id)) == 30 and not at.warning


def test_review_before_the_first_epoch(store):
    ds = add_tiny_dataset(store)
    store.create_run(ds, {"epochs": 2})
    at = open_app("review")
    assert any("no finished epoch yet" in m for m in texts(at.info))


# ---- export ---------------------------------------------------------------------------------------------


@pytest.fixture
def captured_downloads(monkeypatch):
    """The deferred-download callables the page registers, by file name."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    got: dict[str, tuple[str, object]] = {}
    original = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        got[file_name] = (mimetype, data_callable)
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return got


def test_export_buttons_and_bytes(store, captured_downloads):
    run_id = reviewed_run(store)
    frame = store.load_dataset_frame(store.get_run(run_id)["dataset_id"])
    store.add_decision(run_id, 0, NAMES.index(frame["label"][0]), 0, "relabel")
    store.add_decision(run_id, 1, NAMES.index(frame["label"][1]), None, "drop")
    store.add_decision(run_id, 2, NAMES.index(frame["label"][2]), None, "keep")
    at = open_app("export")
    assert not at.error
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download JSON Lines", "Download Parquet", "Download the decision log (CSV)"]
    files = {name: v for name, v in captured_downloads.items()}
    csv_name = next(n for n in files if n.endswith(".csv") and "_cleaned_" in n)
    mime, make = files[csv_name]
    assert mime == "text/csv"
    out = pd.read_csv(io.BytesIO(make()))
    assert len(out) == 39  # the dropped sample is left out
    for col in ("text", "label", "true_label", "given_label", "final_label", "action", "clean_prob", "is_label_issue"):
        assert col in out.columns
    row0 = out[out["sample_index"] == 0].iloc[0]
    assert row0["action"] == "relabel" and row0["final_label"] == "colour"
    assert out[out["sample_index"] == 2].iloc[0]["action"] == "keep"
    pq_name = next(n for n in files if n.endswith(".parquet"))
    pq = pd.read_parquet(io.BytesIO(files[pq_name][1]()))
    given = np.array([NAMES.index(v) for v in frame["label"]])  # no embeddings kept: identical texts only
    expected = build_cleaned_frame(frame, np.array([NAMES.index(v) for v in frame["label"]]), NAMES,
                                   store.current_decisions(run_id), np.arange(40) / 40, 0.5,
                                   predicted_labels=(np.array([NAMES.index(v) for v in frame["label"]]) + 1) % 3,
                                   flags_epoch=1, predicted_prob=np.full(40, 0.8),
                                   top3_labels=np.full((40, 3), -1), top3_probs=np.full((40, 3), np.nan),
                                   label_score=store.load_epoch_report(run_id, 1).label_score,
                                   issues=issue_columns(*find_issues(None, frame["text"].tolist(), given), 40))
    pd.testing.assert_frame_equal(pq.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False)
    jl_name = next(n for n in files if n.endswith(".jsonl"))
    assert len(files[jl_name][1]().decode().strip().splitlines()) == 39
    log = pd.read_csv(io.BytesIO(files[next(n for n in files if "_decisions_" in n)][1]()))
    assert list(log["action"]) == ["relabel", "drop", "keep"]
    # the per-class summary and the decision log are on the page
    body = joined(at)
    assert "What changed, per class" in body and "Decision log" in body
    # keeping dropped rows
    at.toggle(key="export_include_dropped").set_value(True).run()
    mime, make = captured_downloads[csv_name]
    assert len(pd.read_csv(io.BytesIO(make()))) == 40


def test_a_failing_action_is_a_message(store, monkeypatch):
    """An error inside a button callback (here: the store refusing the write) shows a
    message on the page, not a traceback, and the decisions already made stay."""
    run_id = reviewed_run(store)
    store.add_decision(run_id, 0, 0, 1, "relabel")
    at = open_app("review")

    def broken(self, run_id, rows, **kwargs):
        raise ValueError("disk full")

    monkeypatch.setattr(Store, "add_decisions", broken)
    at.button(key="review_bulk").click().run()
    assert not at.exception
    assert any("That did not work: ValueError: disk full" in e for e in texts(at.error))
    assert list(store.current_decisions(run_id)) == [0]


def test_export_numeric_labels_are_escaped_unless_asked(store, captured_downloads):
    """Labels -1 / 1 come out as '-1 (formula escaping); the page's toggle writes the label
    columns as numbers, while a text such as " =2+2" stays escaped."""
    frame = pd.DataFrame({"text": [" =2+2" if i == 0 else f"text {i}" for i in range(6)],
                          "label": ["-1", "1"] * 3})
    ds = store.add_dataset("numeric", frame, {"text_column": "text", "label_column": "label",
                                              "true_label_column": None, "label_names": ["-1", "1"]})
    store.create_run(ds, {"epochs": 1, "selection": {"tau": 0.5}}, name="n")
    at = open_app("export")
    assert not at.error

    def csv() -> pd.DataFrame:
        name = next(n for n in captured_downloads if n.endswith(".csv") and "_cleaned_" in n)
        return pd.read_csv(io.BytesIO(captured_downloads[name][1]()), dtype=str)

    out = csv()
    assert out["label"].tolist()[:2] == ["'-1", "1"] and out["given_label"][0] == "'-1"
    assert out["text"][0] == "' =2+2"
    at.toggle(key="export_plain_numeric").set_value(True).run()
    assert not at.exception
    out = csv()
    for column in ("label", "given_label", "final_label"):
        assert out[column].tolist()[:2] == ["-1", "1"], column
    assert out["text"][0] == "' =2+2"
