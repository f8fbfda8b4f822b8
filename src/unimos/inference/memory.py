"""Wall time, peak resident memory and the memory-time area of a piece of work (FLARE's efficiency measure).

The peak is exact on Linux: the kernel's high-water mark (VmHWM) is reset at the start (clear_refs 5) and
read at the end. The area is integrated from /proc samples taken twice a second (sampling faster measurably
slows torch on 2 cores).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")


def current_rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def _high_water_mib() -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_high_water() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Usage:
    seconds: float
    peak_rss_mib: float
    area_mib_s: float


class UsageMeter:
    """Context manager measuring one block; `usage` holds the result afterwards."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.usage = Usage(0.0, 0.0, 0.0)
        self._stop = threading.Event()
        self._peak = 0.0
        self._area = 0.0
        self._last = 0.0
        self._exact_peak = False

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._add_sample()

    def _add_sample(self) -> None:
        now = time.perf_counter()
        rss = current_rss_mib()
        self._peak = max(self._peak, rss)
        self._area += rss * (now - self._last)
        self._last = now

    def __enter__(self) -> "UsageMeter":
        self._exact_peak = _reset_high_water()
        self._start = self._last = time.perf_counter()
        self._peak = current_rss_mib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._add_sample()
        high_water = _high_water_mib() if self._exact_peak else None
        peak = max(self._peak, high_water or 0.0)
        self.usage = Usage(time.perf_counter() - self._start, peak, self._area)
