# The learning-rate grid (not part of `rule all`): every learned editor of every table trained at each rate of
# `lr_grid.lrs` for `lr_grid.steps` steps (first seed), scored by its best validation loss on the held-out dev
# edits (never on reported ones). `snakemake --cores all lr_grid` writes figures/<profile>/lr_grid.{md,csv}; the
# config's per-editor `train.lr` values are its choices, and tests check that they match the committed copy
# config/lr_grid/<profile>.csv.

if LR_GRID:

    rule lr_grid_train:
        input:
            model=model_input,
            data=lambda wc: list(task_files(wc).values()),
        output:
            ckpt=temp(f"{SEEDED}/{{task}}/{{model}}/{{editor}}/lr_grid/lr{{lr}}.pt"),
            metrics=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/lr_grid/lr{{lr}}.json",
        log:
            f"{RES}/logs/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}.log",
        benchmark:
            f"{RES}/benchmarks/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}.tsv"
        wildcard_constraints:
            seed=r"\d+",
            lr=r"[0-9.e+-]+",
        conda:
            "../../envs/mendrepro.yaml"
        threads: 1
        resources:
            gpu=rule_resource("train", "gpu"),
            mem_mb=rule_resource("train", "mem_mb"),
            runtime=rule_resource("train", "runtime"),
        params:
            launch=LAUNCH,
            exp=lr_grid_experiment_json,
            files=task_files_json,
        shell:
            "{params.launch} --threads {threads} train --exp {params.exp:q} --model {input.model} "
            "--files {params.files:q} --out {output.ckpt} --metrics {output.metrics} > {log} 2>&1"

    rule lr_grid:
        input:
            lr_grid_runs(),
        output:
            md=f"{FIG}/lr_grid.md",
            csv=f"{FIG}/lr_grid.csv",
        log:
            f"{RES}/logs/lr_grid.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
        shell:
            "{params.report_cmd} lr-grid --runs {input} --out {params.stem} --profile {params.profile} > {log} 2>&1"
