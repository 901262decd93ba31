# Inputs of the tiny profile: the synthetic world (in the real datasets' formats) and its tokenizer.


rule world:
    output:
        [data_file(k) for k in WORLD_KEYS],
        tokenizer=f"{RES}/tokenizer/tokenizer.json",
    params:
        world=json.dumps(config["world"], sort_keys=True),
        out=f"{RES}/world",
    log:
        f"{RES}/logs/world.log",
    conda:
        "../../envs/mendrepro.yaml"
    shell:
        "{LAUNCH} world --world {params.world:q} --out {params.out} "
        "--tokenizer $(dirname {output.tokenizer}) > {log} 2>&1"
