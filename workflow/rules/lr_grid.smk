# The learning-rate grid (not part of `rule all`): every learned editor of every table trained at each rate of
# `lr_grid.lrs` for `lr_grid.steps` steps (first seed), scored by its best validation loss on the held-out dev
# edits (never on reported ones). `snakemake --cores all lr_grid` writes figures/<profile>/lr_grid.{md,csv}; the
# config's per-editor `train.lr` values are its choices, and tests check that they match the committed copy
# config/lr_grid/<profile>.csv.

LR_GRID = config.get("lr_grid", {})


def lr_grid_runs():
    """Every grid run's training summary: learned editors of every table x the grid's rates (first seed)."""
    seen = []
    for table in TABLES:
        t = config["tables"].get(table, {})
        ks = [b["k"] for b in t.get("batches", [{"k": 1}])]
        for e in t.get("experiments", []):
            for ed in t.get("editors", []):
                for k in ks:
                    for lr in LR_GRID.get("lrs", []):
                        editor = editor_dir(ed, k)
                        path = f"{run_dir(SEEDS[0], e['task'], e['model'], editor)}/lr_grid/lr{lr:g}.json"
                        if is_learned(ed) and path not in seen:
                            seen.append(path)
    return seen


def lr_grid_experiment_json(wildcards):
    exp = experiment(wildcards.task, wildcards.model, wildcards.editor, wildcards.seed)
    # The grid's budget, or the editor's own when smaller (Table 5's large-k editors).
    exp["train"].update(lr=float(wildcards.lr), steps=min(LR_GRID["steps"], exp["train"]["steps"]))
    return json.dumps(exp, sort_keys=True)


if LR_GRID:

    rule lr_grid_train:
        wildcard_constraints:
            seed=r"\d+",
            lr=r"[0-9.e+-]+",
        input:
            model=model_input,
            data=lambda wc: list(task_files(wc).values()),
        output:
            ckpt=temp(f"{SEEDED}/{{task}}/{{model}}/{{editor}}/lr_grid/lr{{lr}}.pt"),
            metrics=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/lr_grid/lr{{lr}}.json",
        params:
            exp=lr_grid_experiment_json,
            files=task_files_json,
        threads: 1
        resources:
            gpu=rule_resource("train", "gpu"),
            mem_mb=rule_resource("train", "mem_mb"),
            runtime=rule_resource("train", "runtime"),
        log:
            f"{RES}/logs/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}.log",
        benchmark:
            f"{RES}/benchmarks/seed{{seed}}/lr_grid/{{task}}/{{model}}/{{editor}}/lr{{lr}}.tsv"
        conda:
            "../../envs/mendrepro.yaml"
        shell:
            "{LAUNCH} --threads {threads} train --exp {params.exp:q} --model {input.model} "
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
            "../../envs/mendrepro.yaml"
        shell:
            "{REPORT_CMD} lr-grid --runs {input} --out {FIG}/lr_grid --profile {PROFILE} > {log} 2>&1"
