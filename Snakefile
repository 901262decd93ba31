# mend-repro: regenerate the MEND paper's tables from raw outputs.
# `snakemake --cores all` runs the tiny profile; `--configfile config/paper.yaml` the paper.
from snakemake.utils import min_version, validate

min_version("9.0")


# The published image of the Dockerfile, for `snakemake --sdm apptainer` (clusters without Docker); each rule also
# names the conda environment envs/mendrepro.yaml (same pins) for `--sdm conda`. See README, "Three ways to run".
container: "docker://ghcr.io/mend-repro/mend-repro:0.1.0"


# The tiny profile unless a --configfile is given (which then replaces it, not merges into it).
if not workflow.overwrite_configfiles:

    configfile: "config/tiny.yaml"


validate(config, schema="config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/editors.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
