"""Peak memory of the current process: CUDA max allocated on a GPU, peak resident set size on the CPU.

On a GPU the peak is ``torch.cuda.max_memory_allocated``, reset by ``torch.cuda.reset_peak_memory_stats``.

On a Linux CPU the peak is the process's high-water resident set ``VmHWM`` (``/proc/self/status``), which
writing ``5`` to ``/proc/self/clear_refs`` resets to the current resident set: a *peak window* starts with
:func:`start_peak_window` (or :func:`reset_peak`) and is read with :func:`peak_memory_mb`. For the peak of a
block of code *above what was in use before it* (a delta), :func:`start_peak_window` first runs ``gc.collect``
and glibc's ``malloc_trim`` so freed memory is returned to the system before the window starts, and returns the
memory in use at its start; :class:`PeakMemory` wraps both ends in a ``with`` block. Pinning glibc's mmap
threshold (:meth:`Libc.pin_mmap_threshold`) makes every large tensor mapped on allocation and unmapped on free,
so freed memory never hides in the heap between windows.

Where ``/proc`` is unavailable (macOS, some sandboxes) the CPU peak falls back to ``ru_maxrss``, the peak of the
process's whole life, which cannot be reset.

Resetting ``VmHWM`` also resets what the kernel reports as the process's ``ru_maxrss`` (``getrusage``, and so
``/usr/bin/time -v`` at exit): after a reset it is the peak since the last reset, not over the process's life.
Tools that sample the resident set themselves (Snakemake's ``benchmark:`` files, psutil) are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import re
import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Libc:
    """glibc's malloc controls, when the C library is glibc; every method is a no-op elsewhere (musl, macOS)."""

    def __init__(self):
        self.lib = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.malloc_trim  # noqa: B018 (probe: musl has no malloc_trim)
                self.lib = lib
            except (OSError, AttributeError):
                self.lib = None

    def pin_mmap_threshold(self, nbytes: int = 64 * 1024) -> None:
        """Serve every allocation of ``nbytes`` or more by its own mmap (M_MMAP_THRESHOLD, static from then on)."""
        if self.lib is not None:
            self.lib.mallopt(-3, nbytes)  # M_MMAP_THRESHOLD; also disables the dynamic threshold

    def keep_freed_memory(self) -> None:
        """Serve every allocation from the heap and never return freed memory to the system (no mmap, no trim):
        a warm allocator, for timing. Pinning the threshold, or glibc's own default, which maps each block of 32
        MiB or more and trims a heap that frees 64 MiB or more at its top, gives a run fresh page faults whenever
        it frees and reallocates large tensors, a cost the run's own code does not choose."""
        if self.lib is not None:
            self.lib.mallopt(-4, 0)  # M_MMAP_MAX: no mmap
            self.lib.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: (almost) never trim

    def trim(self) -> None:
        """Return the heap's free memory to the system (``malloc_trim(0)``)."""
        if self.lib is not None:
            self.lib.malloc_trim(0)


#: The process's C library (one instance, shared by every caller).
LIBC = Libc()


def status_kb(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...); None where it cannot be read."""
    try:
        m = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def reset_hwm() -> bool:
    """Reset ``VmHWM`` to the current ``VmRSS`` through ``/proc/self/clear_refs``; False where not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@functools.cache
def can_reset_hwm() -> bool:
    """Whether this process can read ``VmHWM`` and reset it (checked once; the check itself resets it)."""
    return reset_hwm() and status_kb("VmHWM") is not None


def _ru_maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # macOS reports bytes, Linux KiB


def _cpu_peak_mb() -> float:
    hwm = status_kb("VmHWM")  # where it cannot be reset it is the lifetime peak, as ru_maxrss
    return hwm / 1024 if hwm is not None else _ru_maxrss_mb()


def memory_kind(device: torch.device | str) -> str:
    """What a :class:`PeakMemory` delta on ``device`` measures.

    ``cuda_max_allocated_delta``, ``cpu_peak_rss_delta`` (``VmHWM`` over the window minus ``VmRSS`` at its start),
    or ``unavailable`` (a CPU whose peak cannot be reset).
    """
    if torch.device(device).type == "cuda":
        return "cuda_max_allocated_delta"
    return "cpu_peak_rss_delta" if can_reset_hwm() else "unavailable"


def start_peak_window(device: torch.device | str = "cpu") -> float:
    """Start a fresh peak window on ``device`` and return the memory in use at its start, MiB.

    ``gc.collect`` first. CUDA: synchronise, reset the peak statistics, return ``memory_allocated``. CPU: return
    freed heap memory to the system (``malloc_trim``), reset ``VmHWM`` and return ``VmRSS``; where ``/proc`` is
    unavailable, return the ``ru_maxrss`` peak so far (the window's delta is then how much the lifetime peak grew).
    Read the window with :func:`peak_memory_mb`; its ``peak_mb`` minus this value is the window's peak delta.
    """
    gc.collect()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    LIBC.trim()
    if can_reset_hwm() and reset_hwm():
        rss = status_kb("VmRSS")
        if rss is not None:
            return rss / 1024
    return _ru_maxrss_mb()


def reset_peak(device: torch.device | str = "cpu") -> None:
    """Start a fresh peak window cheaply (no gc or trim): CUDA peak statistics, or ``VmHWM`` where resettable."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_hwm()


def peak_memory_mb(device: torch.device | str = "cpu") -> dict:
    """{"peak_mb": ..., "kind": "cuda_max_allocated" | "cpu_peak_rss"}: the peak since the window started.

    CUDA: ``max_memory_allocated``. CPU: ``VmHWM`` on Linux (honours :func:`reset_peak` and
    :func:`start_peak_window`), else ``ru_maxrss`` (the process's lifetime peak).
    """
    if torch.device(device).type == "cuda":
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda_max_allocated"}
    return {"peak_mb": _cpu_peak_mb(), "kind": "cpu_peak_rss"}


class PeakMemory:
    """``with PeakMemory(device) as pm: ...``: ``pm.delta_mb`` is the block's peak above the memory in use when it
    started, MiB (see :func:`start_peak_window`); ``None`` on a CPU whose peak cannot be reset."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.delta_mb: float | None = None
        self.measurable = self.device.type == "cuda" or (self.device.type == "cpu" and can_reset_hwm())
        self.base = 0.0

    def __enter__(self) -> PeakMemory:
        if self.measurable:
            self.base = start_peak_window(self.device)
        else:
            gc.collect()
        return self

    def __exit__(self, *exc) -> bool:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if self.measurable:
            self.delta_mb = peak_memory_mb(self.device)["peak_mb"] - self.base
        return False
