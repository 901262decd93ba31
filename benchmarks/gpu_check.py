"""The GPU check (`make gpu-check`): what the CPU machine cannot measure, in one run and one file.

    python -m benchmarks.gpu_check [--out FILE] [--sizes a,b] [--ft-batch-sizes a,b|none] [--dag-target T|none]
                                   [--timeout S] [--allow-cpu]

1. The memory probe (mendrepro.probe) at the paper's GPU sizes, random weights, one training step per editor
   (MEND, KE, ENN; one fine-tuning step for FT), the base model in bfloat16 where config/paper.yaml loads it so
   (GPT-J 6B, T5-XXL: `torch_dtype`), float32 elsewhere; plus Table 4's sizes, whose step times against the same
   probe on a CPU give a measured GPU speed-up for the rehearsal's estimate (python -m mendrepro.rehearsal.estimate
   --speedup). Each size runs in its own process, so an out-of-memory error is recorded and the check goes on.
2. FT and FT+KL evaluation throughput on the GPU (benchmarks/ft_batch.py --device cuda): edits per second one at a
   time and B side by side (``eval.edit_batch``), and their ratio, at BERT-base, BART-base and distilGPT-2 size,
   FT steps 1 and 3, B = 16 and 64 (``ft_batch`` in the file). In its own process: a failure or a timeout is
   recorded (with the rows printed before it) and the check goes on.
3. The tiny DAG (config/tiny.yaml) on the GPU, with its wall time.

Everything goes to one JSON file (default benchmarks/results/gpu-check-<host>.json), rewritten after each step, so
a run cut short keeps what it measured. Without CUDA it stops at once, unless --allow-cpu (how the CPU half is
tested: micro sizes, no DAG).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The paper's sizes and the base model's dtype as config/paper.yaml loads each (models.*.source.torch_dtype).
SIZES = {
    "gpt-neo-2.7b": "float32",
    "gpt-j-6b": "bfloat16",
    "t5-xl": "float32",
    "t5-xxl": "bfloat16",
    "bert-base": "float32",
    "bart-base": "float32",
    "distilgpt2": "float32",
}
EDITORS = "mend,ke,enn,ft"


def environment() -> dict:
    import torch

    env = {
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count())
    return env


def _tail(text: str, n: int = 2000) -> str:
    return text[-n:]


def run_probe(size: str, dtype: str, device: str, out_dir: Path, timeout: float) -> dict:
    """One size's probe in its own process: its JSON, or the failure (return code and the end of its output)."""
    out = out_dir / f"{size}.json"
    cmd = [sys.executable, "-m", "mendrepro.probe", "--size", size, "--editors", EDITORS, "--dtype", dtype]
    cmd += ["--device", device, "--out", str(out)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "dtype": dtype, "error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    rec = {"ok": p.returncode == 0, "dtype": dtype, "wall_s": round(time.time() - t0, 1)}
    if p.returncode == 0:
        rec["result"] = json.loads(out.read_text())
    else:
        rec.update(returncode=p.returncode, error=_tail(p.stderr + p.stdout))
    return rec


def _rows(stdout: str | bytes | None) -> list[dict]:
    """The rows benchmarks/ft_batch.py printed, one JSON object a line (what it measured before a failure)."""
    if isinstance(stdout, bytes):
        stdout = stdout.decode(errors="replace")
    rows = []
    for line in (stdout or "").splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short by the timeout
    return rows


def run_ft_batch(sizes: str, batches: str, steps: str, device: str, out_dir: Path, timeout: float) -> dict:
    """FT and FT+KL evaluation throughput, one edit at a time against B side by side (benchmarks/ft_batch.py), in
    its own process: its rows, or the failure (and the rows it printed before failing or running out of time)."""
    cmd = [sys.executable, "-m", "benchmarks.ft_batch", "--sizes", sizes, "--batches", batches, "--steps", steps]
    cmd += ["--device", device, "--out", str(out_dir), "--machine", "gpu-check"]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = f"timed out after {timeout:.0f} s"
        return {"ok": False, "device": device, "error": err, "wall_s": timeout, "rows": _rows(e.stdout)}
    rec = {"ok": p.returncode == 0, "device": device, "wall_s": round(time.time() - t0, 1)}
    if p.returncode == 0:
        rec["rows"] = json.loads((out_dir / "gpu-check-ft-batch.json").read_text())["results"]
    else:
        rec.update(returncode=p.returncode, error=_tail(p.stderr + p.stdout), rows=_rows(p.stdout))
    return rec


def run_dag(target: str, cores: str, timeout: float) -> dict:
    """The tiny profile's DAG (or one target of it), from scratch, with its wall time."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", cores, "--configfile", "config/tiny.yaml", "--forceall"]
    cmd += [] if target == "all" else [target]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "target": target, "error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    return {
        "ok": p.returncode == 0,
        "target": target,
        "cores": cores,
        "wall_s": round(time.time() - t0, 1),
        "returncode": p.returncode,
        "log_tail": _tail(p.stderr + p.stdout),
    }


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="the JSON file (default benchmarks/results/gpu-check-<host>.json)")
    p.add_argument("--sizes", default=",".join(SIZES), help="comma list of probe sizes (micro-* for tests)")
    p.add_argument(
        "--ft-batch-sizes",
        default="bert-base,bart-base,distilgpt2",
        help="comma list of sizes for FT/FT+KL evaluation throughput (benchmarks/ft_batch.py), or none",
    )
    p.add_argument("--ft-batch-batches", default="16,64", help="comma list of B: edits side by side")
    p.add_argument("--ft-batch-steps", default="1,3", help="comma list: FT steps every edit takes")
    p.add_argument("--ft-batch-timeout", type=float, default=1200, help="seconds for all of ft_batch")
    p.add_argument("--dag-target", default="all", help="the tiny DAG's target: all, a file, or none")
    p.add_argument("--cores", default="all", help="snakemake --cores for the tiny DAG")
    p.add_argument("--timeout", type=float, default=900, help="seconds per probe size")
    p.add_argument("--dag-timeout", type=float, default=3600)
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (tests of the CPU half)")
    args = p.parse_args(argv)
    env = environment()
    if not env["cuda_available"] and not args.allow_cpu:
        print(
            f"gpu-check: no CUDA device (torch {env['torch']}, CUDA build {env['cuda']}); this check needs a GPU "
            "(`make gpu-check` installs PyPI's CUDA torch into its own venv)",
            file=sys.stderr,
        )
        return 2
    device = "cuda" if env["cuda_available"] else "cpu"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"gpu-check-{env['host']}.json")
    doc: dict = {
        "environment": env,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "probe": {},
        "ft_batch": None,
        "dag": None,
    }
    probe_dir = ROOT / "build" / "gpu-check" / "probe"
    for size in [s for s in args.sizes.split(",") if s]:
        dtype = SIZES.get(size, "float32")
        print(f"gpu-check: probe {size} ({dtype}) ...", file=sys.stderr, flush=True)
        doc["probe"][size] = rec = run_probe(size, dtype, device, probe_dir, args.timeout)
        print(f"gpu-check: probe {size}: {'ok' if rec['ok'] else 'FAILED'} in {rec['wall_s']} s", file=sys.stderr)
        _write(out, doc)
    if args.ft_batch_sizes != "none":
        what = f"{args.ft_batch_sizes}, B {args.ft_batch_batches}, steps {args.ft_batch_steps}"
        print(f"gpu-check: ft_batch ({what}) ...", file=sys.stderr, flush=True)
        doc["ft_batch"] = rec = run_ft_batch(
            args.ft_batch_sizes,
            args.ft_batch_batches,
            args.ft_batch_steps,
            device,
            ROOT / "build" / "gpu-check" / "ft-batch",
            args.ft_batch_timeout,
        )
        status = "ok" if rec["ok"] else "FAILED"
        print(f"gpu-check: ft_batch: {status} in {rec['wall_s']} s ({len(rec['rows'])} rows)", file=sys.stderr)
        _write(out, doc)
    if args.dag_target != "none":
        print(f"gpu-check: tiny DAG ({args.dag_target}) ...", file=sys.stderr, flush=True)
        doc["dag"] = run_dag(args.dag_target, args.cores, args.dag_timeout)
        print(
            f"gpu-check: tiny DAG: {'ok' if doc['dag']['ok'] else 'FAILED'} in {doc['dag']['wall_s']} s",
            file=sys.stderr,
        )
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(out, doc)
    print(f"gpu-check: wrote {out}")
    failed = [s for s, r in doc["probe"].items() if not r["ok"]]
    failed += [step for step in ("ft_batch", "dag") if doc[step] and not doc[step]["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
