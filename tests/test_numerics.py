"""mendrepro.numerics: the pipeline's processes pin torch's and oneMKL's CPU path to AVX2 where the CPU has it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mendrepro import numerics
from mendrepro.numerics import PINNED, has_avx2, pin_cpu_numerics

AVX2_FLAGS = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "expected"),
    [
        ("x86_64", AVX2_FLAGS, True),
        ("AMD64", AVX2_FLAGS, True),
        ("x86_64", "flags\t\t: fpu sse2 avx\n", False),
        ("x86_64", "flags\t\t: fpu sse2 avx512f\n", False),  # a flag is a whole word: avx2 itself must be there
        ("x86_64", "model name\t: avx2 in a name, not a flag\n", False),
        ("aarch64", AVX2_FLAGS, False),
    ],
)
def test_avx2_is_read_from_the_cpu_flags(monkeypatch, machine, cpuinfo, expected):
    monkeypatch.setattr(numerics.platform, "machine", lambda: machine)
    assert has_avx2(cpuinfo) is expected


@pytest.mark.parametrize(
    ("environ", "avx2", "added", "after"),
    [
        ({}, True, PINNED, PINNED),
        ({"MKL_CBWR": "COMPATIBLE"}, True, {"ATEN_CPU_CAPABILITY": "avx2"},
         {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2"}),  # the user's choice stays
        ({}, False, {}, {}),  # another CPU: left alone
    ],
)  # fmt: skip
def test_pinning_sets_only_what_is_unset(environ, avx2, added, after):
    env = dict(environ)
    assert pin_cpu_numerics(env, avx2=avx2) == added
    assert env == after


def test_a_pinned_process_runs_torch_on_the_avx2_path():
    """Pinned before torch's first kernel, torch reports the AVX2 path (on an AVX2 machine, also its own)."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    probe = (
        "import json, os; from mendrepro.numerics import pin_cpu_numerics; pin_cpu_numerics(); import torch; "
        "torch.ones(8).sum(); print(json.dumps([os.environ.get('MKL_CBWR'), torch.backends.cpu.get_cpu_capability()]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True).stdout
    cbwr, capability = json.loads(out)
    if has_avx2():
        assert (cbwr, capability) == ("AVX2", "AVX2")
    else:
        assert cbwr is None
