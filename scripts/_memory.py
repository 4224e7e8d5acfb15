"""Memory readings shared by the benchmarks (imported by scripts/bench_*.py, which run as scripts)."""

from __future__ import annotations

import sys
from pathlib import Path


def proc_status_mb(key: str) -> float | None:
    """A size field of /proc/self/status in MB (``VmRSS``: now, ``VmHWM``: peak of this process image,
    not inherited across exec); None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """ru_maxrss of this process in MB. Linux carries the parent's high-water mark over fork + exec, so a
    benchmark's parent process stays small (stdlib only) and never sets the floor of a child's peak."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KB on Linux
