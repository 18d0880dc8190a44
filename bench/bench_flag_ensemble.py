"""Issue #9's untried candidate: flags ensembled over epochs, against the rule's one epoch.

    python bench/bench_flag_ensemble.py run --dataset agnews --max-train-samples 500 \
        --max-test-samples 500 --noise asym:0.4 --seeds 0,1,2 --out runs/i9-ensemble [--threads 1]
    python bench/bench_flag_ensemble.py render runs/i9-ensemble [--no-doc]

The code lives in selfmix_core.benchmark.ensemble (so the reading guides' numbers can use it);
this is the command the section names.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfmix_core.benchmark.ensemble import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
