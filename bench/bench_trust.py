"""Issue #9's trust section of docs/BENCHMARKS.md, from the harness's result cells.

    python bench/bench_trust.py runs/i9-trec1k runs/i9-agnews500 ...   # --no-doc: print only

The code lives in selfmix_core.benchmark.trust (so the reading guides' numbers can use it);
this is the command the section names.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfmix_core.benchmark.trust import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
