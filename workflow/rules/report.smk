# Tables rendered from the raw metrics files, with the paper's published numbers beside ours.


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
            csv=f"{FIG}/{_table}.csv",
        params:
            table=_table,
        log:
            f"{RES}/logs/{_table}.log",
        conda:
            "../../envs/mendrepro.yaml"
        shell:
            "{LAUNCH} {params.table} --metrics {input} --out {FIG}/{params.table} --profile {PROFILE} > {log} 2>&1"
