"""Tables and figures rendered from the raw outputs, and the paper's published numbers."""

# The report commands of `python -m mendrepro`: tables and figures, all dispatched by mendrepro.report.cli.main
# and rendered with pandas (and matplotlib/seaborn for figures) only, never torch.
TABLE_COMMANDS = ("table3", "table4", "table5", "table6", "figure3-memory", "memory-probe-report", "claims", "lr-grid")
