# Tiny profile: pre-train each base model on the world, then sample the Wikitext edit targets.


rule pretrain:
    wildcard_constraints:
        model=one_of(PRETRAINED_MODELS),
    input:
        world=[data_file(k) for k in WORLD_KEYS],
        tokenizer=f"{RES}/tokenizer/tokenizer.json",
    output:
        model=directory(f"{RES}/models/{{model}}"),
        metrics=f"{RES}/models/{{model}}.metrics.json",
    params:
        exp=pretrain_json,
        world=f"{RES}/world",
    threads: 1
    resources:
        mem_mb=4000,
    log:
        f"{RES}/logs/pretrain/{{model}}.log",
    benchmark:
        f"{RES}/benchmarks/pretrain/{{model}}.tsv"
    conda:
        "../../envs/mendrepro.yaml"
    shell:
        "{LAUNCH} --threads {threads} pretrain --exp {params.exp:q} --world {params.world} "
        "--tokenizer $(dirname {input.tokenizer}) --out {output.model} --metrics {output.metrics} > {log} 2>&1"


if "self_sample_train" not in DOWNLOADS:

    rule self_sample:
        input:
            model=model_dir(config["tasks"]["wikitext"]["sampler_model"]),
            wiki_train=data_file("wiki_train"),
            wiki_dev=data_file("wiki_dev"),
        output:
            train=data_file("self_sample_train"),
            dev=data_file("self_sample_dev"),
        params:
            exp=base_model_json(config["tasks"]["wikitext"]["sampler_model"]),
        threads: 1
        log:
            f"{RES}/logs/self_sample.log",
        conda:
            "../../envs/mendrepro.yaml"
        shell:
            "{LAUNCH} --threads {threads} self-sample --exp {params.exp:q} --model {input.model} "
            "--wiki-train {input.wiki_train} --wiki-valid {input.wiki_dev} "
            "--out-train {output.train} --out-valid {output.dev} > {log} 2>&1"
