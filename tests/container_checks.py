"""Static checks of the container and the environments, without a Docker engine (tests/test_container.py).

Three ways to run the artifact install one pinned set: the venv (envs/requirements.lock), the Docker image
(Dockerfile + envs/requirements-pypi.lock) and Snakemake's software deployment (the Snakefile's `container:` for
`--sdm apptainer`, envs/mendrepro.yaml for `--sdm conda`). Each function returns a list of error messages (empty
when the check passes), so that a test can show it on a good file and on a bad fixture.

    python tests/container_checks.py          # every check on the repository, exit 1 on any error
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
CPU_LOCK = "envs/requirements.lock"
PYPI_LOCK = "envs/requirements-pypi.lock"
CONDA_ENV = "envs/mendrepro.yaml"
# The light environment of the table and figure rules (pandas and matplotlib, never torch).
REPORT_ENV = "envs/report.yaml"

# Packages the PyPI lock may hold beyond the CPU lock: the CUDA runtime wheels of PyPI's torch, and packages whose
# marker excludes the CPU lock's platform (Linux x86_64, CPython 3.11), e.g. colorama on Windows.
CUDA_ONLY = re.compile(r"^(nvidia-.+|cuda-.+|triton)$")
CPU_LOCK_PLATFORM = {
    "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64",
    "python_version": "3.11", "python_full_version": "3.11.15", "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}  # fmt: skip
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:[\w][\w.-]*@sha256:[0-9a-f]{64}$")
SHA256_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")

INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


class DockerfileError(ValueError):
    """The Dockerfile does not parse."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


def normalize(name: str) -> str:
    """PEP 503 project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- Dockerfile --------------------------------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined, as BuildKit reads them; DockerfileError if malformed."""
    out: list[Instruction] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):  # comment lines inside a continued instruction are dropped
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.strip().partition(" ")
        if keyword.upper() not in INSTRUCTIONS:
            raise DockerfileError(f"line {start}: unknown instruction {keyword!r}")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = ""
    if buf:
        raise DockerfileError(f"line {start}: the file ends inside a continued instruction")
    if not out:
        raise DockerfileError("no instructions")
    first = next(i for i in out if i.keyword != "ARG")
    if first.keyword != "FROM":
        raise DockerfileError(f"line {first.line}: the first instruction (after ARGs) must be FROM")
    for i in out:
        if i.keyword in ("ENTRYPOINT", "CMD", "SHELL", "VOLUME") and i.args.startswith("["):
            try:
                value = json.loads(i.args)
            except json.JSONDecodeError as e:
                raise DockerfileError(f"line {i.line}: {i.keyword} is not a valid JSON array: {e}") from None
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise DockerfileError(f"line {i.line}: {i.keyword} must be a JSON array of strings")
    return out


def read_dockerfile(path: Path) -> list[Instruction]:
    return parse_dockerfile(path.read_text())


def final_stage(instrs: list[Instruction]) -> list[Instruction]:
    last = max(k for k, i in enumerate(instrs) if i.keyword == "FROM")
    return instrs[last:]


def _from_parts(instr: Instruction) -> tuple[str, str | None]:
    tokens = [t for t in instr.args.split() if not t.startswith("--")]
    image = tokens[0] if tokens else ""
    name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else None
    return image, name


def base_image_errors(instrs: list[Instruction]) -> list[str]:
    """Every image a build pulls (FROM, COPY --from=<image>) is named literally and pinned by a sha256 digest."""
    errors, stages = [], set()
    for i in instrs:
        refs = []
        if i.keyword == "FROM":
            image, name = _from_parts(i)
            if image != "scratch" and image not in stages:
                refs.append(image)
            if name:
                stages.add(name)
        elif i.keyword in ("COPY", "ADD"):
            for opt in re.findall(r"--from=(\S+)", i.args):
                if opt not in stages and not opt.isdigit():
                    refs.append(opt)
        for ref in refs:
            if "$" in ref:
                errors.append(f"line {i.line}: image {ref!r} comes from a variable; name it literally with a digest")
            elif not DIGEST_REF.match(ref):
                errors.append(f"line {i.line}: image {ref!r} is not pinned by digest (name:tag@sha256:<64 hex>)")
    return errors


def _shell_commands(run_args: str) -> list[list[str]]:
    """The simple commands of a RUN's shell text, split at &&, ||, ; and |, each tokenised."""
    try:
        tokens = shlex.split(run_args, comments=False, posix=True)
    except ValueError:
        tokens = run_args.split()
    commands, cur = [], []
    for t in tokens:
        if t in ("&&", "||", ";", "|"):
            commands.append(cur)
            cur = []
        else:
            cur.append(t)
    commands.append(cur)
    return [c for c in commands if c]


PIP_VALUE_OPTIONS = {
    "-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "-t", "--target", "--prefix", "--root", "--python", "-p", "--platform", "--python-version", "--src",
    "--config-settings", "-C", "--cache-dir", "--progress-bar", "--implementation", "--abi", "--upgrade-strategy",
}  # fmt: skip


def pip_installs(instrs: list[Instruction]) -> list[tuple[int, list[str]]]:
    """(line, arguments after `install`) of every `pip install` / `python -m pip install` / `uv pip install`."""
    found = []
    for i in instrs:
        if i.keyword != "RUN":
            continue
        for cmd in _shell_commands(i.args):
            for k in range(len(cmd) - 1):
                if re.fullmatch(r"(.*/)?pip(3(\.\d+)?)?", cmd[k]) and cmd[k + 1] == "install":
                    found.append((i.line, cmd[k + 2 :]))
                    break
    return found


def install_errors(instrs: list[Instruction], lock: str = PYPI_LOCK) -> list[str]:
    """The image installs its Python packages from the hash-pinned lock, never from a floating list."""
    errors, from_lock = [], False
    copied = any(i.keyword in ("COPY", "ADD") and lock in i.args.split() for i in instrs)
    if not copied:
        errors.append(f"the Dockerfile does not COPY {lock} into the image")
    installs = pip_installs(instrs)
    if not installs:
        errors.append("the Dockerfile runs no `pip install`")
    for line, args in installs:
        files, specs, flags, k = [], [], set(), 0
        while k < len(args):
            a = args[k]
            opt, eq, val = a.partition("=")
            if a.startswith("-") and opt in PIP_VALUE_OPTIONS:
                if not eq:
                    k += 1
                    val = args[k] if k < len(args) else ""
                if opt in ("-r", "--requirement"):
                    files.append(val)
            elif a.startswith("-"):
                flags.add(a)
            else:
                specs.append(a)
            k += 1
        for f in files:
            if Path(f).as_posix().removeprefix("/artifact/").removeprefix("./") != lock and not f.endswith("/" + lock):
                errors.append(f"line {line}: installs from {f!r}, not from the lock {lock}")
            elif "--require-hashes" not in flags:
                errors.append(f"line {line}: installs {f} without --require-hashes")
            else:
                from_lock = True
        for s in specs:
            local = s in (".", "..") or s.startswith(("./", "/", "../"))
            if not local:
                errors.append(f"line {line}: installs {s!r} from a floating list, not from the lock")
            elif "--no-deps" not in flags:
                errors.append(f"line {line}: installs the local project {s!r} without --no-deps")
    if installs and not from_lock:
        errors.append(f"no `pip install --require-hashes -r {lock}` in the Dockerfile")
    return errors


def env_vars(instrs: list[Instruction]) -> dict[str, str]:
    env = {}
    for i in instrs:
        if i.keyword != "ENV":
            continue
        tokens = shlex.split(i.args)
        if tokens and "=" not in tokens[0]:  # legacy form: ENV KEY value
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for t in tokens:
            key, _, value = t.partition("=")
            env[key] = value
    return env


def runtime(instrs: list[Instruction]) -> dict:
    """What `docker run` sees from the final stage: user, workdir, entrypoint, cmd, volumes, environment."""
    stage = final_stage(instrs)
    out = {"user": None, "workdir": None, "entrypoint": None, "cmd": None, "volumes": [], "env": env_vars(stage)}
    for i in stage:
        if i.keyword == "USER":
            out["user"] = i.args
        elif i.keyword == "WORKDIR":
            out["workdir"] = i.args if i.args.startswith("/") else f"{out['workdir'] or ''}/{i.args}"
        elif i.keyword in ("ENTRYPOINT", "CMD"):
            out[i.keyword.lower()] = json.loads(i.args) if i.args.startswith("[") else ["/bin/sh", "-c", i.args]
        elif i.keyword == "VOLUME":
            out["volumes"] += json.loads(i.args) if i.args.startswith("[") else i.args.split()
    return out


def runtime_errors(instrs: list[Instruction], workdir: str = "/artifact") -> list[str]:
    """Non-root user, the artifact's WORKDIR, `snakemake --cores all` as entrypoint + cmd, results/HF cache volumes."""
    rt, errors = runtime(instrs), []
    if rt["user"] is None or rt["user"].split(":")[0] in ("root", "0"):
        errors.append(f"the image runs as root (USER {rt['user']}); switch to a non-root user")
    if rt["workdir"] != workdir:
        errors.append(f"WORKDIR is {rt['workdir']!r}, not {workdir!r}")
    if rt["entrypoint"] != ["snakemake"]:
        errors.append(f'ENTRYPOINT is {rt["entrypoint"]}, not ["snakemake"] (exec form)')
    if rt["cmd"] != ["--cores", "all"]:
        errors.append(f'CMD is {rt["cmd"]}, not ["--cores", "all"] (exec form)')
    for vol in (f"{workdir}/results", rt["env"].get("HF_HOME")):
        if vol not in rt["volumes"]:
            errors.append(f"{vol} (results / HF_HOME) is not a VOLUME ({rt['volumes']})")
    return errors


def cuda_fit_errors(instrs: list[Instruction], cuda_lock: dict[str, str]) -> list[str]:
    """The final stage's nvidia/cuda base has the CUDA major version of the torch build the lock pins."""
    image, _ = _from_parts(final_stage(instrs)[0])
    m = re.match(r"^(?:[\w.-]+/)?nvidia/cuda:(\d+)\.(\d+)", image)
    if not m:
        return [f"the final stage's base {image!r} is not an nvidia/cuda image"]
    runtime_pin = cuda_lock.get("cuda-toolkit") or next(
        (v for k, v in cuda_lock.items() if re.fullmatch(r"nvidia-cuda-runtime(-cu\d+)?", k)), None
    )
    if runtime_pin is None:
        return ["the PyPI lock pins no CUDA runtime (cuda-toolkit / nvidia-cuda-runtime): is torch a CUDA build?"]
    if int(m.group(1)) != int(runtime_pin.split(".")[0]):
        return [f"base image CUDA {m.group(1)}.{m.group(2)} does not fit torch's CUDA runtime {runtime_pin}"]
    return []


# --- locks -------------------------------------------------------------------------------------------------------


def parse_lock(text: str) -> tuple[dict[str, str], list[str]]:
    """The `name -> version` pins of a requirements lock, and its errors: every entry `==`-pinned with sha256 hashes."""
    pins, errors = {}, []
    logical, buf, start = [], "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line and not buf:
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append((start, buf + line))
        buf = ""
    if buf:
        logical.append((start, buf))
    for n, entry in logical:
        tokens = entry.split()
        hashes = [t for t in tokens if t.startswith("--hash")]
        rest = [t for t in tokens if not t.startswith("--hash")]
        if not rest or rest[0].startswith("-"):
            errors.append(f"line {n}: option {entry!r}: a lock holds only pinned, hashed requirements")
            continue
        spec = " ".join(rest)
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!_-]+)(\s*;.*)?", spec)
        if not m:
            errors.append(f"line {n}: {spec!r} is not pinned with == to one version")
            continue
        name = normalize(m.group(1))
        if name in pins:
            errors.append(f"line {n}: {name} is pinned twice")
        pins[name] = m.group(2)
        if not hashes:
            errors.append(f"line {n}: {name}=={m.group(2)} has no --hash")
        errors += [f"line {n}: {name}: {h!r} is not a sha256 hash" for h in hashes if not SHA256_HASH.match(h)]
    if not pins:
        errors.append("the lock pins no packages")
    return pins, errors


def read_lock(path: Path) -> tuple[dict[str, str], list[str]]:
    return parse_lock(path.read_text())


def lock_markers(text: str) -> dict[str, str]:
    """`name -> environment marker` of the pins of a lock that carry one (uv's universal resolution)."""
    out = {}
    for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==[^\s;]+\s*;\s*([^\\\n]+?)\s*\\?$", text, re.M):
        out[normalize(m.group(1))] = m.group(2)
    return out


def off_platform(marker: str | None) -> bool:
    """Whether a marker excludes the CPU lock's platform, so the package never installs where that lock does."""
    return marker is not None and not Marker(marker).evaluate(CPU_LOCK_PLATFORM)


def lock_match_errors(cpu: dict[str, str], cuda: dict[str, str], markers: dict[str, str] | None = None) -> list[str]:
    """The PyPI lock has the CPU lock's versions; it differs only by torch's local label and the CUDA wheels."""
    errors = []
    for name, version in sorted(cpu.items()):
        if CUDA_ONLY.match(name):
            errors.append(f"the CPU lock pins the CUDA package {name}")
        elif name not in cuda:
            errors.append(f"{name}=={version} is in the CPU lock but not in the PyPI lock")
        elif name == "torch":
            if version.split("+")[0] != cuda[name].split("+")[0]:
                errors.append(f"torch {cuda[name]} (PyPI lock) is not the CPU lock's {version}")
            if cuda[name].endswith("+cpu"):
                errors.append(f"the PyPI lock pins the CPU build torch=={cuda[name]}")
        elif cuda[name] != version:
            errors.append(f"{name}: {cuda[name]} in the PyPI lock, {version} in the CPU lock")
    for name in sorted(set(cuda) - set(cpu)):
        if not CUDA_ONLY.match(name) and not off_platform((markers or {}).get(name)):
            errors.append(
                f"{name}=={cuda[name]} is in the PyPI lock only (neither a CUDA runtime wheel nor off Linux x86_64)"
            )
    return errors


# --- conda environment --------------------------------------------------------------------------------------------


def conda_env_errors(env_text: str, lock: dict[str, str], subset: bool = False) -> list[str]:
    """envs/mendrepro.yaml: Python 3.11 and, through pip, exactly the lock's `==` pins (subset=True, as for
    envs/report.yaml: some of them, at the lock's versions)."""
    env = yaml.safe_load(env_text) or {}
    deps = env.get("dependencies") or []
    errors = []
    if not any(isinstance(d, str) and re.fullmatch(r"python\s*=+\s*3\.11(\.\d+)?", d) for d in deps):
        errors.append("the conda environment does not pin python=3.11")
    pip = next((d["pip"] for d in deps if isinstance(d, dict) and "pip" in d), None)
    if pip is None:
        return errors + ["the conda environment has no pip section"]
    pins = {}
    for item in pip:
        item = str(item).strip()
        if item.startswith("-"):
            # Snakemake copies the file before creating the environment, so a path (`-e ..`) would point elsewhere.
            errors.append(f"pip entry {item!r} is an option or a path, not a pin")
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)(\s*;.+)?", item)
        if not m:
            errors.append(f"pip entry {item!r} is not a `name==version` pin")
            continue
        pins[normalize(m.group(1))] = m.group(2)
    for name in sorted(set(lock) | set(pins)):
        if name not in pins:
            if not subset:
                errors.append(f"{name}=={lock[name]} (lock) is missing from the conda environment")
        elif name not in lock:
            errors.append(f"{name}=={pins[name]} is in the conda environment but not in the lock")
        elif pins[name] != lock[name]:
            errors.append(f"{name}: {pins[name]} in the conda environment, {lock[name]} in the lock")
    return errors


# --- Snakefile and README -----------------------------------------------------------------------------------------


def snakefile_image(snakefile_text: str) -> str | None:
    """The image of the Snakefile's global `container:` directive, without its docker:// scheme."""
    m = re.search(r'^container:\s*["\']docker://([^"\']+)["\']', snakefile_text, re.M)
    return m.group(1) if m else None


def conda_directive_errors(
    rule_files: list[Path], root: Path = ROOT, env: str = CONDA_ENV, report_env: str = REPORT_ENV
) -> list[str]:
    """Every rule that runs the package (a `shell:` calling the launcher, the interpreter or the report command,
    {params.launch}, {params.py} or {params.report_cmd}) names its conda environment, by a path that resolves
    (relative to its own .smk file) to envs/report.yaml for the report command and envs/mendrepro.yaml otherwise."""
    errors = []
    for path in rule_files:
        chunks = re.split(r"^\s*rule\b", path.read_text(), flags=re.M)[1:]
        for chunk in chunks:
            name = chunk.split(":")[0].strip() or "(anonymous)"
            if not re.search(r"\{params\.(launch|py|report_cmd)\}", chunk):
                continue
            m = re.search(r"conda:\s*\n\s*[\"']([^\"']+)[\"']", chunk)
            want = report_env if "{params.report_cmd}" in chunk else env
            if not m:
                errors.append(f"{path.name}: rule {name} has no conda: directive")
            elif (path.parent / m.group(1)).resolve() != (root / want).resolve():
                errors.append(f"{path.name}: rule {name}: conda: {m.group(1)} does not resolve to {want}")
    return errors


def readme_commands(readme_text: str, program: str) -> list[str]:
    """The `program ...` command lines in the README's code blocks, continuation lines joined."""
    commands, in_code, buf = [], False, ""
    for raw in readme_text.splitlines():
        if raw.strip().startswith("```"):
            in_code, buf = not in_code, ""
            continue
        if not in_code:
            continue
        line = raw.split(" # ", 1)[0].rstrip() if not buf else raw.rstrip()
        if not buf and not line.lstrip().startswith(program + " "):
            continue
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        commands.append((buf + line.strip()).split("  #", 1)[0].strip())
        buf = ""
    return commands


DOCKER_RUN_VALUE_OPTIONS = {
    "-v", "--volume", "-e", "--env", "--env-file", "-u", "--user", "--gpus", "--name", "-w", "--workdir",
    "--entrypoint", "--shm-size", "--ipc", "--network", "--mount", "--cpus", "-m", "--memory", "--platform",
}  # fmt: skip


def parse_docker_run(command: str) -> dict:
    tokens = shlex.split(command)[2:]  # after `docker run`
    opts: dict[str, list[str]] = {}
    k = 0
    while k < len(tokens) and tokens[k].startswith("-"):
        opt, eq, val = tokens[k].partition("=")
        if opt in DOCKER_RUN_VALUE_OPTIONS:
            if not eq:
                k += 1
                val = tokens[k]
            opts.setdefault(opt, []).append(val)
        else:
            opts.setdefault(opt, []).append("")
        k += 1
    return {"options": opts, "image": tokens[k] if k < len(tokens) else None, "args": tokens[k + 1 :]}


def readme_errors(readme_text: str, instrs: list[Instruction], image: str) -> list[str]:
    """The README's docker commands agree with the Dockerfile (entrypoint, workdir, volumes) and the image name."""
    rt, errors = runtime(instrs), []
    builds, runs = readme_commands(readme_text, "docker build"), readme_commands(readme_text, "docker run")
    if not builds:
        errors.append("the README has no `docker build` command")
    for b in builds:
        tokens = shlex.split(b)
        tag = next((tokens[k + 1] for k, t in enumerate(tokens[:-1]) if t in ("-t", "--tag")), None)
        if tag != image:
            errors.append(f"`{b}` tags {tag!r}, not the Snakefile's image {image!r}")
    if not runs:
        errors.append("the README has no `docker run` command")
    volumes = set(rt["volumes"])
    for r in runs:
        run = parse_docker_run(r)
        if run["image"] != image:
            errors.append(f"`{r}` runs {run['image']!r}, not {image!r}")
        for wd in run["options"].get("-w", []) + run["options"].get("--workdir", []):
            if wd != rt["workdir"]:
                errors.append(f"`{r}` sets the workdir {wd}, the image's is {rt['workdir']}")
        for v in run["options"].get("-v", []) + run["options"].get("--volume", []):
            target = v.split(":")[1] if ":" in v else v
            if target not in volumes:
                errors.append(f"`{r}` mounts {target}, which is not a VOLUME of the image ({sorted(volumes)})")
        if run["options"].get("--entrypoint"):
            continue
        entry = rt["entrypoint"] or []
        if entry and run["args"][: len(entry)] == entry:
            errors.append(f"`{r}` repeats the entrypoint {entry} (the image's ENTRYPOINT is already {entry})")
        for a in run["args"]:
            if a.startswith(rt["workdir"] + "/") or a.startswith("/artifact/"):
                errors.append(f"`{r}`: pass {a} relative to the workdir {rt['workdir']}")
    default = [r for r in runs if not parse_docker_run(r)["args"]]
    if not default:
        errors.append("the README has no `docker run ... IMAGE` without arguments (the default CMD)")
    if not any("--gpus" in parse_docker_run(r)["options"] for r in runs):
        errors.append("the README has no `docker run --gpus all ...` command")
    if not any("config/paper.yaml" in parse_docker_run(r)["args"] for r in runs):
        errors.append("the README has no `docker run ... --configfile config/paper.yaml` command")
    for sdm in ("--sdm apptainer", "--sdm conda"):
        if sdm not in readme_text:
            errors.append(f"the README does not show `snakemake ... {sdm}`")
    return errors


def readme_section(readme_text: str, title: str) -> str:
    """One `## title` section of the README (empty if absent)."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme_text, re.M | re.S)
    return m.group(1) if m else ""


# --- everything ---------------------------------------------------------------------------------------------------


def all_errors(root: Path = ROOT) -> dict[str, list[str]]:
    try:
        instrs = read_dockerfile(root / "Dockerfile")
    except DockerfileError as e:
        return {"Dockerfile parses": [str(e)]}
    cpu, cpu_errors = read_lock(root / CPU_LOCK)
    cuda, cuda_errors = read_lock(root / PYPI_LOCK)
    markers = lock_markers((root / PYPI_LOCK).read_text())
    image = snakefile_image((root / "Snakefile").read_text())
    return {
        "base images pinned by digest": base_image_errors(instrs),
        "installs from the lock": install_errors(instrs),
        "runtime (user, workdir, entrypoint, volumes)": runtime_errors(instrs),
        f"{CPU_LOCK} pinned and hashed": cpu_errors,
        f"{PYPI_LOCK} pinned and hashed": cuda_errors,
        "locks agree": lock_match_errors(cpu, cuda, markers),
        "base image fits torch's CUDA": cuda_fit_errors(instrs, cuda),
        f"{CONDA_ENV} matches the lock": conda_env_errors((root / CONDA_ENV).read_text(), cuda),
        f"{REPORT_ENV} pins a part of the lock": conda_env_errors((root / REPORT_ENV).read_text(), cuda, subset=True),
        "Snakefile container": [] if image else ['the Snakefile has no `container: "docker://..."`'],
        "rules name the conda env": conda_directive_errors(sorted((root / "workflow/rules").glob("*.smk")), root),
        "README docker commands": readme_errors((root / "docs/running.md").read_text(), instrs, image or ""),
    }


def main() -> int:
    failed = 0
    for check, errors in all_errors().items():
        print(f"{'FAIL' if errors else 'ok  '}  {check}")
        for e in errors:
            print(f"        {e}")
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
