# Evaluate an editor on dev edits in batches of k: raw per-edit lines plus the aggregated metrics.


rule evaluate:
    input:
        model=model_input,
        data=lambda wc: list(task_files(wc).values()),
        ckpt=checkpoint_input,
    output:
        records=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/eval_k{{k}}/edits.jsonl",
        metrics=f"{SEEDED}/{{task}}/{{model}}/{{editor}}/eval_k{{k}}/metrics.json",
    log:
        f"{RES}/logs/seed{{seed}}/evaluate/{{task}}/{{model}}/{{editor}}/k{{k}}.log",
    benchmark:
        f"{RES}/benchmarks/seed{{seed}}/evaluate/{{task}}/{{model}}/{{editor}}/k{{k}}.tsv"
    wildcard_constraints:
        k=r"\d+",
        seed=r"\d+",
    priority: 1  # after pre-training and training (see train_editor), before the tables
    conda:
        "../../envs/mendrepro.yaml"
    threads: 1
    resources:
        gpu=rule_resource("evaluate", "gpu"),
        mem_mb=rule_resource("evaluate", "mem_mb"),
        runtime=rule_resource("evaluate", "runtime"),
    params:
        launch=LAUNCH,
        exp=experiment_json,
        files=task_files_json,
        ckpt=ckpt_arg,
    shell:
        "{params.launch} --threads {threads} evaluate --exp {params.exp:q} --model {input.model} "
        "--files {params.files:q} {params.ckpt} --records {output.records} "
        "--metrics {output.metrics} > {log} 2>&1"
