# Tiny profile: pre-train each base model on the world, then sample the Wikitext edit targets.


rule pretrain:
    input:
        world=pretrain_world,
        tokenizer=pretrain_tokenizer,
    output:
        model=directory(f"{SEEDED}/models/{{model}}"),
        metrics=f"{SEEDED}/models/{{model}}.metrics.json",
    log:
        f"{RES}/logs/seed{{seed}}/pretrain/{{model}}.log",
    benchmark:
        f"{RES}/benchmarks/seed{{seed}}/pretrain/{{model}}.tsv"
    wildcard_constraints:
        model=one_of(PRETRAINED_MODELS),
        seed=r"\d+",
    # Pre-training gates every job of its model: run it first (see train_editor's priority).
    priority: 3
    conda:
        "../../envs/mendrepro.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        launch=LAUNCH,
        exp=pretrain_json,
        world=world_input_dir,
    shell:
        "{params.launch} --threads {threads} pretrain --exp {params.exp:q} --world {params.world} "
        "--tokenizer $(dirname {input.tokenizer}) --out {output.model} --metrics {output.metrics} > {log} 2>&1"


if "self_sample_train" not in DOWNLOADS:
    for _key in ("self_sample_train", "self_sample_dev"):
        if "{seed}" not in data_file(_key):
            raise ValueError(
                f"data.{_key}: the self-samples are drawn from a base model pre-trained per seed, so the path must "
                f"contain '{{seed}}' (e.g. {RES}/seed{{seed}}/self_sample/train.json), got {data_file(_key)!r}"
            )

    rule self_sample:
        input:
            model=f"{SEEDED}/models/{config['tasks']['wikitext']['sampler_model']}",
            wiki_train=data_file("wiki_train"),
            wiki_dev=data_file("wiki_dev"),
        output:
            train=data_file("self_sample_train"),
            dev=data_file("self_sample_dev"),
        log:
            f"{RES}/logs/seed{{seed}}/self_sample.log",
        wildcard_constraints:
            seed=r"\d+",
        priority: 3  # gates the Wikitext editors of its seed
        conda:
            "../../envs/mendrepro.yaml"
        threads: 1
        params:
            launch=LAUNCH,
            exp=sampler_json,
        shell:
            "{params.launch} --threads {threads} self-sample --exp {params.exp:q} --model {input.model} "
            "--wiki-train {input.wiki_train} --wiki-valid {input.wiki_dev} "
            "--out-train {output.train} --out-valid {output.dev} > {log} 2>&1"
