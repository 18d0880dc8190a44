"""Process memory readings (Linux /proc, with getrusage as the portable fallback).

Used by the CLI (peak memory in metrics.json), the benchmark harness (peak per cell)
and the reliability benchmark and tests (memory growth of big datasets).
"""

from __future__ import annotations

import resource


def memory_status() -> dict[str, int]:
    """This process's resident memory now (VmRSS) and its peak (VmHWM), in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak_memory() -> bool:
    """Reset the peak (VmHWM) to the current RSS (Linux >= 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(since_reset: bool = False) -> float:
    """Peak resident memory in MB: since the last successful reset_peak_memory() when
    since_reset, else over the process's lifetime."""
    if since_reset:
        try:
            return memory_status()["VmHWM"] / 1024.0**2
        except (OSError, ValueError, KeyError):
            pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
