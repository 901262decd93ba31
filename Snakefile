# mend-repro: regenerate the MEND paper's tables from raw outputs.
# `snakemake --cores all` runs the tiny profile; `--configfile config/paper.yaml` the paper.
import shlex
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# The published image of the Dockerfile, for `snakemake --sdm apptainer` (clusters without Docker); each rule also
# names the conda environment envs/mendrepro.yaml (same pins) for `--sdm conda`. See README, "Three ways to run".
container: "docker://ghcr.io/mend-repro/mend-repro:0.1.0"


# The description at the top of the HTML report (`snakemake --report FILE`); outputs carry their own captions.
report: "workflow/report/workflow.rst"


# The tiny profile unless a --configfile is given (which then replaces it, not merges into it).
if not workflow.overwrite_configfiles:

    configfile: "config/tiny.yaml"


# `--config 'seeds=[1]'` hands the list's items over as strings; the schema asks for integers.
if isinstance(config.get("seeds"), list):
    config["seeds"] = [int(s) if isinstance(s, str) and s.isdigit() else s for s in config["seeds"]]

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


# The HTML report of every table and figure (`report()` outputs, workflow/report/*.rst captions), written after a
# run that leaves all of them in place (a single-table run does not); `snakemake --report FILE` writes it by hand.
onsuccess:
    if all(Path(p).exists() for p in all_targets()):
        _configs = " ".join(f"--configfile {shlex.quote(str(c))}" for c in workflow.overwrite_configfiles)
        _log = f"{RES}/logs/report.log"
        shell(
            f"{sys.executable} -m snakemake --nolock {_configs} --report {FIG}/report.html > {_log} 2>&1 "
            f"&& echo 'report: {FIG}/report.html' || echo 'report not written: see {_log}'"
        )
