# The learning-rate × edit-weight grid (not part of `rule all`): every learned editor of every table trained at each
# (rate, c_edit) of `lr_grid.lrs` × `lr_grid.c_edits` for `lr_grid.steps` steps (first seed); each cell keeps its
# checkpoint by its own validation loss and is scored by that checkpoint's validation ES and drawdown against the
# original model on held-out dev edits (never on reported ones); one rule (docs/method.md, report/lr_grid.py)
# chooses per editor. `snakemake --cores all lr_grid` writes figures/<profile>/lr_grid.{md,csv}; the config's
# `train_lr` and `train_c_edit` are its choices, and tests check that they match the committed copy
# config/lr_grid/<profile>.csv. With `lr_grid.ledger` set, each cell records its provenance, `python -m mendrepro
# grid-save` copies the cells into that folder, and a later job of a cell recorded with the same provenance copies it
# back instead of training (mendrepro.grid_cells): the grid can be run over several sessions.

if LR_GRID:

    rule lr_grid_train:
        input:
            model=model_input,
            data=lambda wc: list(task_files(wc).values()),
        output:
            metrics=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/lr_grid/lr{{lr}}_c{{c_edit}}.json",
        log:
            f"{RES}/logs/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}_c{{c_edit}}.log",
        benchmark:
            f"{RES}/benchmarks/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}_c{{c_edit}}.tsv"
        wildcard_constraints:
            seed=r"\d+",
            lr=r"[0-9.e+-]+",
            c_edit=r"[0-9.e+-]+",
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
            # The cell's checkpoint: only its summary is the grid's, so it is removed once written.
            ckpt=lambda wc, output: os.path.splitext(output.metrics)[0] + ".pt",
            ledger=lr_grid_ledger_args,
        shell:
            "{params.launch} --threads {threads} train --exp {params.exp:q} --model {input.model} "
            "--files {params.files:q} --out {params.ckpt} --metrics {output.metrics} {params.ledger} > {log} 2>&1 "
            "&& rm -f {params.ckpt}"

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
            tol=lr_grid_tolerance_args(),
        shell:
            "{params.report_cmd} lr-grid --runs {input} --out {params.stem} --profile {params.profile} {params.tol} "
            "> {log} 2>&1"
