"""One floating-point path for every x86-64 CPU with AVX2.

Torch's CPU kernels and oneMKL pick their code path by the CPU they run on (AVX2, AVX-512, ...), and the paths sum
in different orders (measured: ``ATEN_CPU_CAPABILITY=default`` or ``MKL_CBWR=COMPATIBLE`` change a product's last
bits), which thousands of training steps turn into other models; the same code and seeds gave another BART on the
machine of the earlier sessions than on this AVX2 one. The pipeline's processes therefore pin both to their AVX2
path before torch runs a kernel (ATen reads ``ATEN_CPU_CAPABILITY``, oneMKL ``MKL_CBWR``, at first use), which is
what an AVX2 machine runs unpinned (measured here: the same bits). That an AVX-512 machine then gives these bits is
the intent, not measured. A value already in the environment is kept, so a user can choose another path; other
CPUs (no AVX2, not x86-64) are left alone.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping

#: The environment the pipeline's processes pin.
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


def _cpuinfo() -> str:
    """/proc/cpuinfo's text; empty where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def has_avx2(cpuinfo: str | None = None) -> bool:
    """Whether this is an x86-64 CPU with AVX2 (Linux: /proc/cpuinfo's flags; elsewhere assumed not)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    return any(line.startswith("flags") and "avx2" in line.split() for line in text.splitlines())


def pin_cpu_numerics(environ: MutableMapping[str, str] = os.environ, avx2: bool | None = None) -> dict[str, str]:
    """Set :data:`PINNED` in ``environ`` where unset, on a CPU with AVX2; returns what it set."""
    if not (has_avx2() if avx2 is None else avx2):
        return {}
    added = {k: v for k, v in PINNED.items() if k not in environ}
    environ.update(added)
    return added


def cpu_numerics() -> dict[str, str]:
    """What a manifest records of the CPU path a process ran on: the CPU, torch's kernel capability, oneMKL's mode."""
    import torch

    lines = _cpuinfo().splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
    }
