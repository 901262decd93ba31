"""Tables and figures rendered from the raw outputs, and the paper's published numbers."""

# The table commands of `python -m mendrepro` (rendered by mendrepro.report.tables, which needs only pandas).
TABLE_COMMANDS = ("table3", "table4")
