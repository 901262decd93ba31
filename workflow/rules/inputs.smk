# Inputs: the synthetic world and its tokenizer (tiny profile), or the downloaded datasets and checkpoints (paper).


if "world" in config:
    # The world, and with world.wikitext the Wikitext corpus's own world and tokenizer: a whole world is generated,
    # its Wikitext files are the ones read (common.smk, WORLDS).
    for _name, _keys, _spec, _tokenizer in WORLDS:

        rule:
            name:
                _name
            output:
                [data_file(k) for k in _keys],
                tokenizer=_tokenizer,
            log:
                f"{RES}/logs/{_name}.log",
            conda:
                "../../envs/mendrepro.yaml"
            params:
                launch=LAUNCH,
                world=json.dumps(_spec, sort_keys=True),
                out=world_dir,
            shell:
                "{params.launch} world --world {params.world:q} --out {params.out} "
                "--tokenizer $(dirname {output.tokenizer}) > {log} 2>&1"


# One rule per data file the paper profile obtains rather than generates (config `downloads`):
# - kind placed: a file placed by hand under data.placed (or data.mirror), folders no rule outputs, so no run,
#   rerun, param change or --forcerun can delete or change it. The rule checks it (sha256 when pinned, then its
#   format) and symlinks it as its output; Snakemake deletes only that link. A newer placed file reruns the rule.
# - kind hub: a split of a Hub dataset at a pinned revision, exported by huggingface_hub + datasets.
# The messages also go to the console (tee): a missing file says there where it belongs and how to get it.
for _key, _spec in DOWNLOADS.items():

    rule:
        name:
            f"{'place' if _spec['kind'] == 'placed' else 'fetch'}_{_key}"
        input:
            placed_input(_key),
        output:
            data_file(_key),
        log:
            f"{RES}/logs/fetch/{_key}.log",
        localrule: True
        conda:
            "../../envs/mendrepro.yaml"
        params:
            py=PY,
            command="place" if _spec["kind"] == "placed" else "hub",
            spec=download_spec(_key),
            src=placed_src_arg,
            mirror=hub_mirror_arg(_key),
        shell:
            "{params.py} -m mendrepro.data.inputs {params.command} --spec {params.spec:q} {params.src} {params.mirror} "
            "--out {output} 2>&1 | tee {log}"


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
