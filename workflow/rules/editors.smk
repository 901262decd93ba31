# Train each learned editor (MEND and its variants) for one (task, model).


rule train_editor:
    input:
        model=model_input,
        data=lambda wc: list(task_files(wc).values()),
    output:
        ckpt=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/editor.pt",
        metrics=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/train.json",
    log:
        f"{RES}/logs/seed{{seed}}/train/{{task}}/{{model}}/{{editor}}.log",
    benchmark:
        f"{RES}/benchmarks/seed{{seed}}/train/{{task}}/{{model}}/{{editor}}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    # Longest jobs first: trainings (40-130 s on the tiny profile) before evaluations (mostly 7-15 s), so that
    # the run does not end on one training while the other cores idle (about 45 s of the tiny run's 41 min).
    priority: 2
    conda:
        "../../envs/mendrepro.yaml"
    threads: 1
    resources:
        gpu=rule_resource("train", "gpu"),
        mem_mb=rule_resource("train", "mem_mb"),
        runtime=rule_resource("train", "runtime"),
    params:
        launch=LAUNCH,
        exp=experiment_json,
        files=task_files_json,
    shell:
        "{params.launch} --threads {threads} train --exp {params.exp:q} --model {input.model} "
        "--files {params.files:q} --out {output.ckpt} --metrics {output.metrics} > {log} 2>&1"
