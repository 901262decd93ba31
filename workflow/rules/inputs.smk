# Inputs: the synthetic world and its tokenizer (tiny profile), or the downloaded datasets and checkpoints (paper).


if "world" in config:

    rule world:
        output:
            [data_file(k) for k in WORLD_KEYS],
            tokenizer=f"{RES}/tokenizer/tokenizer.json",
        log:
            f"{RES}/logs/world.log",
        conda:
            "../../envs/mendrepro.yaml"
        params:
            launch=LAUNCH,
            world=json.dumps(config["world"], sort_keys=True),
            out=world_dir,
        shell:
            "{params.launch} world --world {params.world:q} --out {params.out} "
            "--tokenizer $(dirname {output.tokenizer}) > {log} 2>&1"


# One rule per fetched data file (paper profile): by URL (checksummed), or placed by hand and checked. The
# messages also go to the console (tee): a missing file says there where it belongs and how to get it.
for _key, _spec in DOWNLOADS.items():

    rule:
        name:
            f"fetch_{_key}"
        output:
            data_file(_key),
        log:
            f"{RES}/logs/fetch/{_key}.log",
        conda:
            "../../envs/mendrepro.yaml"
        params:
            py=PY,
            asset=json.dumps({"name": _key, **_spec}, sort_keys=True),
            mirror=mirror_arg(),
        shell:
            "{params.py} -m mendrepro.data.download --asset {params.asset:q} --out {output} {params.mirror} 2>&1 | tee {log}"


# A model given by `source` (paper profile): its Hub snapshot (and fine-tuned state dict), recorded in a manifest
# that load_model reads.
rule fetch_model:
    output:
        model=directory(f"{RES}/models/{{model}}"),
    log:
        f"{RES}/logs/fetch/model_{{model}}.log",
    wildcard_constraints:
        model=one_of(SOURCED_MODELS),
    conda:
        "../../envs/mendrepro.yaml"
    resources:
        mem_mb=4000,
    params:
        py=PY,
        source=source_json,
        arch=lambda wc: config["models"][wc.model]["arch"],
        mirror=mirror_arg(),
    shell:
        "{params.py} -m mendrepro fetch-model --name {wildcards.model} --arch {params.arch} --source {params.source:q} "
        "--out {output.model} {params.mirror} 2>&1 | tee {log}"
