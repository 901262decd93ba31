# Tables and figures rendered from the raw outputs, with the paper's published numbers beside ours; each is also a
# `report()` item of `snakemake --report figures/<profile>/report.html`, captioned by workflow/report/<name>.rst.
# Rendering needs no GPU: these rules call the environment's python directly, whatever the launcher.

REPORT_CMD = f"{PY} -m mendrepro"
TABLE_CATEGORY = {
    "table3": "Table 3: large models",
    "table4": "Table 4: small models",
    "table5": "Table 5: batched edits",
    "table6": "Table 6: MEND ablations",
}

for _table in TABLES:
    if _table not in config["tables"]:
        continue

    rule:
        name:
            _table
        input:
            table_metrics(_table),
        output:
            md=f"{FIG}/{_table}.md",
            tex=f"{FIG}/{_table}.tex",
            csv=report(
                f"{FIG}/{_table}.csv",
                caption=f"../report/{_table}.rst",
                category="Tables",
                subcategory=TABLE_CATEGORY[_table],
                labels={"table": _table, "format": "csv"},
            ),
        log:
            f"{RES}/logs/{_table}.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
            table=_table,
            extra=table_args(_table),
        shell:
            "{params.report_cmd} {params.table} --metrics {input} --out {params.stem} --profile {params.profile} "
            "{params.extra} > {log} 2>&1"


for _name, _study in STUDIES.items():

    rule:
        name:
            f"{_name}_study"
        input:
            metrics=study_metrics(_name),
            edits=[Path(p).with_name("edits.jsonl").as_posix() for p in study_metrics(_name)],
            train=study_train_metrics(_name),
        output:
            md=f"{FIG}/{_name}.md",
            tex=f"{FIG}/{_name}.tex",
            csv=f"{FIG}/{_name}.csv",
            claims_md=f"{FIG}/{_name}_claims.md",
            claims_csv=f"{FIG}/{_name}_claims.csv",
        log:
            f"{RES}/logs/{_name}.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
            table=_study["table"],
            tables=json.dumps(config["tables"], sort_keys=True),
        shell:
            # The claims on the study's runs alone: the parts it has inputs for get verdicts, the rest inconclusive.
            "({params.report_cmd} {params.table} --metrics {input.metrics} --out {params.stem} "
            "--profile {params.profile} && {params.report_cmd} claims --metrics {input.metrics} "
            "--train {input.train} --tables {params.tables:q} --out {params.stem}_claims "
            "--profile {params.profile}) > {log} 2>&1"


if memory_train_metrics():

    rule figure3_memory:
        input:
            memory_train_metrics(),
        output:
            png=report(
                f"{FIG}/figure3_memory.png",
                caption="../report/figure3_memory.rst",
                category="Figures",
                labels={"figure": "memory during editor training"},
            ),
            pdf=f"{FIG}/figure3_memory.pdf",
            csv=f"{FIG}/figure3_memory.csv",
        log:
            f"{RES}/logs/figure3_memory.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
        shell:
            "{params.report_cmd} figure3-memory --train-metrics {input} --out {params.stem} "
            "--profile {params.profile} > {log} 2>&1"


# The memory probe: one editor training step of each editor on a randomly initialised model of a real paper size
# (no download), so the paper's memory comparison is re-measured at true scale (the GPU sizes where CUDA is).
rule memory_probe:
    output:
        f"{RES}/memory_probe/{{size}}.json",
    log:
        f"{RES}/logs/memory_probe/{{size}}.log",
    benchmark:
        f"{RES}/benchmarks/memory_probe/{{size}}.tsv"
    wildcard_constraints:
        size=one_of(PROBE_SIZES),
    conda:
        "../../envs/mendrepro.yaml"
    threads: 1
    resources:
        gpu=rule_resource("memory_probe", "gpu"),
        mem_mb=rule_resource("memory_probe", "mem_mb"),
        runtime=rule_resource("memory_probe", "runtime"),
    params:
        py=PY,
        editors=",".join(PROBE.get("editors", ["mend", "ke", "enn", "ft"])),
    shell:
        "{params.py} -m mendrepro memory-probe --threads {threads} --size {wildcards.size} --editors {params.editors} "
        "--out {output} > {log} 2>&1"


if PROBE_SIZES:

    rule memory_probe_report:
        input:
            [f"{RES}/memory_probe/{size}.json" for size in PROBE_SIZES],
        output:
            md=f"{FIG}/memory_probe.md",
            csv=report(
                f"{FIG}/memory_probe.csv",
                caption="../report/memory_probe.rst",
                category="Figures",
                labels={"figure": "memory probe at paper sizes", "format": "csv"},
            ),
            png=report(
                f"{FIG}/memory_probe.png",
                caption="../report/memory_probe.rst",
                category="Figures",
                labels={"figure": "memory probe at paper sizes", "format": "png"},
            ),
            pdf=f"{FIG}/memory_probe.pdf",
        log:
            f"{RES}/logs/memory_probe_report.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
        shell:
            "{params.report_cmd} memory-probe-report --probe {input} --out {params.stem} --profile {params.profile} > {log} 2>&1"


# The paper's claims (PAPER_SPEC), each with the paper's evidence, ours, a 95% bootstrap interval over the edits
# (paired across editors, two-level across seeds) and a verdict; computed from the raw per-edit files beside the
# metrics files (every metrics file of every configured table, each once), the editors' training summaries
# (step-cap notes) and the memory probes (F3.1).
CLAIMS_METRICS = list(dict.fromkeys(p for t in TABLES if t in config["tables"] for p in table_metrics(t)))


if CLAIMS_METRICS:

    rule claims:
        input:
            metrics=CLAIMS_METRICS,
            edits=[Path(p).with_name("edits.jsonl").as_posix() for p in CLAIMS_METRICS],
            train=claims_train_metrics(),
            probe=[f"{RES}/memory_probe/{size}.json" for size in PROBE_SIZES],
        output:
            md=f"{FIG}/claims.md",
            csv=report(
                f"{FIG}/claims.csv",
                caption="../report/claims.rst",
                category="Claims",
                labels={"table": "claims", "format": "csv"},
            ),
        log:
            f"{RES}/logs/claims.log",
        conda:
            "../../envs/report.yaml"
        params:
            report_cmd=REPORT_CMD,
            stem=out_stem,
            profile=PROFILE,
            tables=json.dumps(config["tables"], sort_keys=True),
        shell:
            "{params.report_cmd} claims --metrics {input.metrics} --train {input.train} --probe {input.probe} "
            "--tables {params.tables:q} --out {params.stem} --profile {params.profile} > {log} 2>&1"
