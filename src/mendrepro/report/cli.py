"""The report command line: every table and figure command of `python -m mendrepro` (pandas and matplotlib only).

Its own module because it gathers the report modules, which all build on :mod:`mendrepro.report.tables`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mendrepro.report import ablations, batched, claims, figures, lr_grid, tables

_ONE_EDIT_TABLES = {
    "table3": (tables.table3_rows, tables.table3, tables.table3_caption),
    "table4": (tables.table4_rows, tables.table4, tables.table4_caption),
}


def _run_one_edit(args: argparse.Namespace) -> list[Path]:
    metrics = tables.load_metrics(args.metrics)
    rows_fn, table_fn, caption_fn = _ONE_EDIT_TABLES[args.command]
    used = rows_fn(metrics)
    number = args.command.removeprefix("table")
    tables.warn_ignored(
        tables.unused_paths(metrics, used), f"is not a Table {number} result (task/model/n_edits/train_k)"
    )
    df = table_fn(metrics, include_paper_only=args.show_paper_only)
    return tables.write_table(df, args.out, caption_fn(metrics, profile=args.profile))


def build_parser() -> argparse.ArgumentParser:
    """The report commands (:data:`mendrepro.report.TABLE_COMMANDS`), each with ``run(args) -> written paths``."""
    parser = argparse.ArgumentParser(
        prog="python -m mendrepro",
        description="Render the paper's tables (md, tex, csv) and figures (png, pdf, csv) from raw outputs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("table3", "Table 3: GPT-Neo 2.7B, GPT-J 6B on Wikitext; T5-XL, T5-XXL on zsRE; one edit"),
        ("table4", "Table 4: FEVER/BERT, zsRE/BART, Wikitext/distilGPT-2, one edit"),
    ):
        p = sub.add_parser(name, help=help_text)
        tables.add_table_arguments(p)
        p.set_defaults(run=_run_one_edit)
    batched.add_command(sub)
    ablations.add_command(sub)
    figures.add_commands(sub)
    claims.add_command(sub)
    lr_grid.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one report command; print the written paths. Exit status 1 with ``error: ...`` on a bad input."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], list[Path]] = args.run
    try:
        written = run(args)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
