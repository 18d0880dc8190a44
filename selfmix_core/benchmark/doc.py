"""Write one named section of docs/BENCHMARKS.md, leaving the other sections alone.

Each benchmark script owns the text between `<!-- BEGIN name -->` and `<!-- END name -->`;
running it again replaces only that section, so several scripts share one document.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery figure here was printed by a script (under `bench/`, or `python -m selfmix_core bench` and\n`python -m selfmix_core.benchmark.summary` from the cells under `runs/`); each section names the command that made it.\n"


def machine_description(threads: int | None = None) -> str:
    """CPU model (and whether it computes bf16 natively), core count, memory, torch version and GPU if any.

    threads: the torch thread count to state (the one the measured work ran with);
    default: this process's.
    """
    import torch

    threads = threads or torch.get_num_threads()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    # The speed path computes in bf16 on a CPU that has it natively and in fp32 elsewhere, so two
    # "AMD EPYC, 2 cores" machines can give different numbers for the same --speed cell: say which.
    from ..speed import cpu_supports_bf16

    cpu += " (native bf16)" if cpu_supports_bf16() else " (no native bf16)"
    return (f"{cpu}, {os.cpu_count()} cores{mem}{gpu}; torch {torch.__version__} "
            f"({threads} thread{'s' if threads != 1 else ''}), Python {platform.python_version()}")


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=DOC.parent.parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def update_section(name: str, markdown: str, doc: Path = DOC) -> None:
    """Replace (or append) the section `name` of `doc` with `markdown`."""
    from ..atomic import atomic_write_text

    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = doc.read_text() if doc.is_file() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text)


def publish(name: str, markdown: str, write: bool = True, doc: Path = DOC) -> int:
    """What a bench/ script does with its section: print it and, unless told not to (`--no-doc`),
    write it into `doc` as section `name`. Returns 0, the script's exit status."""
    print(markdown)
    if write:
        update_section(name, markdown, doc)
    return 0
