"""Facts about the running process, for the round records (no Ray, no torch)."""

from __future__ import annotations

import resource


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
