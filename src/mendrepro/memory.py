"""Peak memory of the current process: CUDA max allocated on a GPU, peak resident set size on the CPU."""

from __future__ import annotations

import resource
import sys

import torch


def reset_peak(device: torch.device | str = "cpu") -> None:
    """Start a fresh CUDA peak window (the CPU peak RSS of a process cannot be reset; it is read as is)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device | str = "cpu") -> dict:
    """{"peak_mb": ..., "kind": "cuda_max_allocated" | "cpu_peak_rss"}."""
    if torch.device(device).type == "cuda":
        return {"peak_mb": torch.cuda.max_memory_allocated(device) / 2**20, "kind": "cuda_max_allocated"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    return {"peak_mb": mb, "kind": "cpu_peak_rss"}
