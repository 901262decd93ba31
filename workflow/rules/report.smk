# Tables rendered from the raw metrics files, with the paper's published numbers beside ours.


rule table4:
    input:
        table4_metrics(),
    output:
        md=f"{FIG}/table4.md",
        tex=f"{FIG}/table4.tex",
        csv=f"{FIG}/table4.csv",
    log:
        f"{RES}/logs/table4.log",
    shell:
        "{LAUNCH} table4 --metrics {input} --out {FIG}/table4 --profile {PROFILE} > {log} 2>&1"
