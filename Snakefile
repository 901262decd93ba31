# mend-repro: regenerate the MEND paper's tables from raw outputs.
# `snakemake --cores all` runs the tiny profile; `--configfile config/paper.yaml` the paper.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# Every bad input gets one line naming its file (and line) or config key path, at DAG start (mendrepro.checks,
# torch-free; the checkout's copy first, as in common.smk).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from mendrepro.checks import (
    ConfigError,
    apply_overrides,
    check_config,
    check_config_files,
    load_schema,
)
from mendrepro.stale_locks import clear_stale_locks

# A run killed by a signal leaves Snakemake's locks behind; they are removed when no other run of this workflow is
# alive, so the same command continues after any interruption without --unlock (mendrepro.stale_locks).
if workflow.is_main_process and clear_stale_locks():
    print("removed the locks of a run that was killed (no other run of this workflow is alive)", file=sys.stderr)


# The published image of the Dockerfile, for `snakemake --sdm apptainer` (clusters without Docker); each rule also
# names the conda environment envs/mendrepro.yaml (same pins) for `--sdm conda`. See README, "Three ways to run".
container: "docker://ghcr.io/mend-repro/mend-repro:0.1.0"


# The description at the top of the HTML report (`snakemake --report FILE`); outputs carry their own captions.
report: "workflow/report/workflow.rst"


# The tiny profile unless a --configfile is given (which then replaces it, not merges into it).
try:
    check_config_files(workflow.overwrite_configfiles or ["config/tiny.yaml"])
except ConfigError as e:
    raise WorkflowError(str(e)) from None
if not workflow.overwrite_configfiles:

    configfile: "config/tiny.yaml"


# `--config 'train={steps: 500}'` hands nested values over as strings ('500'): typed here as a config file's would
# be, so the checks below give an override the same messages as the same value in a file.
_SCHEMA = load_schema(Path(workflow.basedir) / "config/schema.yaml")
apply_overrides(config, workflow.config_settings.config, _SCHEMA)

# Unknown keys, the schema cut to the offending key path and reason, names, overrides, and each planned run's k and
# n_edits against the dev split; notes say where an evaluation covers fewer edits than configured.
try:
    for _note in check_config(config, _SCHEMA):
        print(_note, file=sys.stderr)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, schema="config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/editors.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/lr_grid.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# A local run of the tiny profile (`fork_server: true`) forks its torch jobs from one process that imported torch and
# transformers once (common.smk, mendrepro.forkserver).
onstart:
    start_fork_server()


onerror:
    stop_fork_server()


# The HTML report of every table and figure (`report()` outputs, workflow/report/*.rst captions), written after a
# run that leaves all of them in place (a single-table run does not); `snakemake --report FILE` writes it by hand.
onsuccess:
    stop_fork_server()
    if all(Path(p).exists() for p in all_targets()):
        _configs = " ".join(f"--configfile {shlex.quote(str(c))}" for c in workflow.overwrite_configfiles)
        _log = f"{RES}/logs/report.log"
        shell(
            f"{sys.executable} -m snakemake --nolock {_configs} --report {FIG}/report.html > {_log} 2>&1 "
            f"&& echo 'report: {FIG}/report.html' || echo 'report not written: see {_log}'"
        )
