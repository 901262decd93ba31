"""One clear line for every bad input the workflow can see before a job starts.

The Snakefile calls :func:`check_config_files` and :func:`check_config` at DAG start, so ``snakemake -n`` fails on
a bad config rather than a job hours later. Every failure is a :class:`ConfigError` whose message is one line: where
(``file:line:column`` or the config key path, e.g. ``tables.table5.batches[2].train.steps``), what is wrong and what
is allowed. Checks that need the data (k and n_edits against the dev split) use the dev files' sizes where they are
known at DAG start: the synthetic world's from its config, any other from the file on disk.

``python -m mendrepro.checks FILE...`` runs the same checks on config files: Snakemake reads ``--configfile`` files
itself before the workflow runs, and its message for a YAML error or a non-UTF-8 byte names no file or line.

Torch-free (imported by the workflow at DAG start).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mendrepro.config import check_editors, is_learned, resolve_experiment, table5_k_scaling

TABLES = ("table3", "table4", "table5", "table6")
TASKS = ("zsre", "fever", "wikitext")
# The dev file whose records are a task's dev edits (mendrepro.build.build_task), and the train file (a data key
# that must be one file, too).
DEV_KEY = {"zsre": "zsre_dev", "fever": "fever_dev", "wikitext": "self_sample_dev"}
# Files the synthetic world writes (tiny profile): their dev sizes come from its config, before they exist.
WORLD_DEV = {"zsre_dev", "fever_dev"}


class ConfigError(ValueError):
    """A bad input, in one line: where (file:line or config key path), what is wrong, what is allowed."""


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown(where: str, what: str, name: str, names: list[str]) -> ConfigError:
    return ConfigError(f"{where}: unknown {what} '{name}'{_suggest(name, names)}; {what}s: {', '.join(names)}")


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f", +{len(names) - n} more" if len(names) > n else "")


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 5] + " ...}"


# ----------------------------------------------------------------------------------------------------------------
# Config files


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last one silently)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    first: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first.setdefault(key, key_node.start_mark.line)
        except TypeError:  # an unhashable key: the constructor below says so, with its mark
            continue
        if seen != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen + 1})", key_node.start_mark
            )
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml(text: str):
    """YAML text as safe_load reads it, except that a duplicate key raises (with its line and column)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def read_config_file(path: str | os.PathLike[str]) -> dict:
    """A YAML/JSON config file as a mapping; a file that is missing, not UTF-8, not YAML or not a mapping raises a
    one-line ConfigError naming the file (and line and column)."""
    p = Path(path)
    hint = ""
    if p.suffix not in (".yaml", ".yml", ".json"):
        # `--configfile` takes every word after it: a target given after it is read as a config file.
        hint = (
            "; a target after --configfile is read as a config file: end the file list with -- (or put targets first)"
        )
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a config file{hint}")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file{hint}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"{p}:{line}:{col}: byte 0x{raw[e.start]:02x} is not UTF-8; config files are UTF-8 text{hint}"
        ) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(f"{where}: YAML error: {problem}" + (f" ({context})" if context else "") + hint) from None
    if data is None:
        raise ConfigError(f"{p}: empty config file; a config file is a mapping of keys (profile, seeds, ...){hint}")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file is a mapping of keys (profile, seeds, ...), got {_short(data)}{hint}")
    return data


def check_config_files(paths: list[str]) -> None:
    """Each config file reads as a mapping (:func:`read_config_file`)."""
    for path in paths:
        read_config_file(path)


# ----------------------------------------------------------------------------------------------------------------
# `--config` overrides


def coerce_overrides(value: Any, schema: dict | None) -> Any:
    """``--config`` values typed as a config file would type them.

    Snakemake reads a nested ``--config 'train={steps: 500}'`` with YAML's base loader, so every nested scalar
    arrives as a string ('500'); only top-level scalars are converted. Each string where the schema does not allow
    a string (and any string where the schema says nothing, e.g. editor options) is read as YAML's safe loader reads
    it, so an override gets the same range messages as the same value in a config file.
    """
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        return {k: coerce_overrides(v, props.get(k, extra)) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_overrides(v, schema.get("items")) for v in value]
    if not isinstance(value, str):
        return value
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "null" in types and value in ("null", "~", "Null", "NULL"):
        return None
    if "string" in types or value in schema.get("enum", ()):
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value


def apply_overrides(config: dict, overrides: Any, schema: dict) -> None:
    """Replace the string values Snakemake merged in from ``--config`` with their typed values (in place)."""
    _merge(config, coerce_overrides(_plain(overrides), schema))


def _plain(value: Any) -> Any:
    """Snakemake's immutable mappings as dicts."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------------------------
# The schema, cut to the offending key path and reason


def key_path(parts: Any) -> str:
    """``['tables', 'table5', 'batches', 2, 'k']`` -> ``tables.table5.batches[2].k``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def schema_problem(instance: Any, schema: dict, prefix: tuple = ()) -> str | None:
    """The most relevant schema violation of ``instance`` as one line ``key.path: reason``, or None."""
    import jsonschema  # Snakemake's own dependency; imported here so the package imports without it
    from jsonschema.exceptions import relevance

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(instance))
    if not errors:
        return None
    # A plain violation (a wrong kind, a missing key) says more than "none of the forms fits" around it.
    plain = [e for e in errors if e.validator not in ("oneOf", "anyOf")]
    error = max(plain or errors, key=relevance)
    # A oneOf/anyOf of forms told apart by a constant (downloads: kind placed or hub): the failures of the form the
    # entry chose, not best_match's pick among every form's failures ("'hub' was expected" for a placed entry).
    while error.validator in ("oneOf", "anyOf") and error.context:
        forms: dict = {}
        for e in error.context:
            forms.setdefault(e.relative_schema_path[0], []).append(e)
        chosen = [errs for errs in forms.values() if all(e.validator != "const" for e in errs)]
        if len(chosen) != 1:
            break
        error = max(chosen[0], key=relevance)
    where = key_path([*prefix, *error.absolute_path])
    message = error.message.replace(repr(error.instance), _short(error.instance))
    if error.validator == "additionalProperties" and isinstance(error.schema.get("properties"), dict):
        known = list(error.schema["properties"])
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        if extra:
            message = f"unknown key '{extra[0]}'{_suggest(extra[0], known)}"
        message += f"; keys: {', '.join(known)}"
    elif error.validator in ("oneOf", "anyOf"):
        forms = sorted({e.message for e in error.context})
        message = f"{_short(error.instance)} matches none of the allowed forms: {' | '.join(forms)}"
    return f"{where}: {message}"


def _schema_error(instance: Any, schema: dict, prefix: tuple) -> None:
    problem = schema_problem(instance, schema, prefix)
    if problem:
        raise ConfigError(problem)


# ----------------------------------------------------------------------------------------------------------------
# The config


@dataclass(frozen=True)
class Run:
    """One evaluation the tables ask for: where in the config it comes from, and what it evaluates."""

    where: str  # e.g. tables.table5.experiments[0]
    task: str
    model: str
    editor: str  # the editor id (Table 5's k-edit editors: <editor>-k<k>)
    table: str


def planned_runs(config: dict) -> Iterator[Run]:
    """Every (task, model, editor id) the configured tables evaluate, once each."""
    seen = set()
    for table in TABLES:
        t = config.get("tables", {}).get(table)
        if not t:
            continue
        ks = [b["k"] for b in t.get("batches", [{"k": 1}])]
        for i, e in enumerate(t.get("experiments", [])):
            for ed in t.get("editors", []):
                for k in ks:
                    editor = ed if k == 1 else f"{ed}-k{k}"
                    if (e["task"], e["model"], editor) not in seen:
                        seen.add((e["task"], e["model"], editor))
                        yield Run(f"tables.{table}.experiments[{i}]", e["task"], e["model"], editor, table)


def check_names(config: dict) -> None:
    """Every name the config refers to exists: table models, tasks and editors, the Wikitext sampler, per-model
    and per-resource model names."""
    models = list(config["models"])
    for table in TABLES:
        t = config["tables"].get(table)
        if not t:
            continue
        for i, e in enumerate(t["experiments"]):
            where = f"tables.{table}.experiments[{i}]"
            if e["task"] not in TASKS:
                raise _unknown(f"{where}.task", "task", e["task"], list(TASKS))
            if e["model"] not in models:
                raise _unknown(f"{where}.model", "model", e["model"], models)
            configured = config["models"][e["model"]]["task"]
            if configured != e["task"]:
                raise ConfigError(
                    f"{where}: model '{e['model']}' is configured for task '{configured}' (models.{e['model']}.task), "
                    f"not '{e['task']}'"
                )
            if e["task"] not in config["tasks"]:
                raise ConfigError(f"{where}.task: '{e['task']}' has no tasks.{e['task']} section (its n_heldout)")
        for j, ed in enumerate(t["editors"]):
            if ed not in config["editors"]:
                raise _unknown(f"tables.{table}.editors[{j}]", "editor", ed, list(config["editors"]))
    if "wikitext" in config["tasks"]:
        sampler = config["tasks"]["wikitext"]["sampler_model"]
        lms = [m for m, e in config["models"].items() if e["task"] == "wikitext"]
        if sampler not in lms:
            raise _unknown("tasks.wikitext.sampler_model", "wikitext model", sampler, lms)
    for name, e in config["editors"].items():
        for m in e.get("per_model", {}):
            if m not in models:
                raise _unknown(f"editors.{name}.per_model", "model", m, models)
    for rule, spec in config.get("resources", {}).items():
        # The memory probe's per-job resources are per probed size, the others' per model.
        names = config.get("memory_probe", {}).get("sizes", []) if rule == "memory_probe" else models
        for m in spec.get("models", {}):
            if m not in names:
                raise _unknown(f"resources.{rule}.models", "model", m, names)


def check_overrides(config: dict, schema: dict) -> None:
    """Every override of the training loop (editors, models, per-model budgets, Table 5's k-edit budgets) and of
    the evaluation (editors) obeys the schema of ``train`` or ``eval``: a typo or ``steps: 0`` fails here."""
    train, ev = schema["properties"]["train"], schema["properties"]["eval"]
    for name, e in config["editors"].items():
        _schema_error(e.get("train", {}), train, ("editors", name, "train"))
        _schema_error(e.get("eval", {}), ev, ("editors", name, "eval"))
        for m, over in e.get("per_model", {}).items():
            _schema_error(over.get("train", {}), train, ("editors", name, "per_model", m, "train"))
    for name, m in config["models"].items():
        _schema_error(m.get("train", {}), train, ("models", name, "train"))
    for i, b in enumerate(config["tables"].get("table5", {}).get("batches", [])):
        _schema_error(b.get("train", {}), train, ("tables", "table5", "batches", i, "train"))


def dev_sizes(config: dict) -> dict[str, tuple[int, str]]:
    """task -> (dev edits, where that number comes from), for the tasks whose dev size is known before any job
    runs: the synthetic world's files from ``world.n_dev_facts``, any other dev file from the file on disk."""
    sizes: dict[str, tuple[int, str]] = {}
    seed = config["seeds"][0]
    for task, key in DEV_KEY.items():
        path = config["data"].get(key)
        if path is None or task not in config["tasks"]:
            continue
        if "world" in config and key in WORLD_DEV:
            from mendrepro.data.synthetic import world_config

            sizes[task] = (world_config(config["world"]).n_dev_facts, "world.n_dev_facts")
            continue
        path = path.format(seed=seed)
        if os.path.isfile(path):
            sizes[task] = (_count_dev(task, path), f"data.{key} ({path})")
    return sizes


def _count_dev(task: str, path: str) -> int:
    """The dev edits of a dev file, read by the loader the task uses (a malformed file fails here, in one line)."""
    from mendrepro.data.formats import DataFormatError

    if task == "zsre":
        from mendrepro.data.zsre import load_zsre as load
    elif task == "fever":
        from mendrepro.data.fever import load_fever as load
    else:
        from mendrepro.data.wikitext import load_self_sample as load
    check_data_file(path)
    try:
        return len(load(path))
    except DataFormatError as e:
        raise ConfigError(str(e).splitlines()[0]) from None


def check_runs(config: dict, sizes: dict[str, tuple[int, str]] | None = None) -> list[str]:
    """Every planned run resolves to a loop that can run: k edits fit the evaluation and the held-out validation
    edits, and (where the dev size is known) the dev split. Returns notes, one line each, for evaluations that
    will cover fewer edits than configured (n_edits beyond the dev split, or not a multiple of k)."""
    sizes = dev_sizes(config) if sizes is None else sizes
    notes: dict[tuple, list[str]] = {}
    for run in planned_runs(config):
        who = f"{run.where} editor '{run.editor}' ({run.task}/{run.model})"
        try:
            exp = resolve_experiment(config, run.task, run.model, run.editor)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{who}: {e}") from None
        ev, tr = exp["eval"], exp["train"]
        # A Table 5 k-edit editor evaluates tables.table5.n_edits (when set), any other eval.n_edits.
        batched = run.editor not in config["editors"] and "n_edits" in config["tables"]["table5"]
        n_edits_key = "tables.table5.n_edits" if batched else "eval.n_edits"
        k, n_edits = ev["k"], ev["n_edits"]
        if k > n_edits:
            raise ConfigError(f"{who}: k = {k} edits at once is more than {n_edits_key} = {n_edits}; n_edits >= k")
        n_heldout = config["tasks"][run.task]["n_heldout"]
        if is_learned(config, run.editor) and tr["edits_per_step"] > n_heldout:
            raise ConfigError(
                f"{who}: tasks.{run.task}.n_heldout = {n_heldout} held-out edits cannot make one validation request "
                f"of {tr['edits_per_step']} edits (train.edits_per_step); n_heldout >= edits per step"
            )
        if run.task not in sizes:
            continue
        n_dev, source = sizes[run.task]
        if n_heldout >= n_dev:
            raise ConfigError(
                f"tasks.{run.task}.n_heldout = {n_heldout} leaves no evaluation edits: the dev split has {n_dev} "
                f"({source}); n_heldout < {n_dev}"
            )
        available = n_dev - n_heldout
        if k > available:
            raise ConfigError(
                f"{who}: k = {k} edits at once is more than the {available} evaluation edits ({n_dev} in {source} "
                f"less tasks.{run.task}.n_heldout = {n_heldout}); k <= {available}"
            )
        evaluated = min(n_edits, available) // k * k
        if evaluated < n_edits:
            key = (run.task, n_edits_key, n_edits, k, evaluated, available)
            notes.setdefault(key, []).append(f"{run.model}/{run.editor}")
    return [
        f"note: {task} evaluates {evaluated} edits, not {key} = {n} ({available} evaluation edits after "
        f"tasks.{task}.n_heldout, in batches of k = {k}): {len(runs)} runs ({_few(runs)})"
        for (task, key, n, k, evaluated, available), runs in notes.items()
    ]


def check_data_file(path: str) -> None:
    """A data path names one UTF-8 file: a directory, or a byte that is not UTF-8, fails in one line naming the
    file (and line and column)."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory; a data path names one file")
    if not os.path.isfile(path):
        return  # a missing file is the input rules' to report (where it goes, how to get it)
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"{path}:{lineno}:{e.start + 1}: byte 0x{raw[e.start]:02x} is not UTF-8; data files are UTF-8 text"
                ) from None


def check_data_paths(config: dict) -> None:
    """No data path is a directory (each seed's path, for the per-seed self-samples), nor the place of a file
    placed by hand (``data.placed`` / ``downloads.<key>.file``)."""
    for key, path in config["data"].items():
        if key in ("placed", "mirror") or not isinstance(path, str):
            continue
        for seed in config["seeds"]:
            p = path.format(seed=seed) if "{seed}" in path else path
            if os.path.isdir(p):
                raise ConfigError(f"data.{key}: {p} is a directory; a data path names one file")
    placed = config["data"].get("placed")
    for key, spec in config.get("downloads", {}).items():
        if spec.get("kind") == "placed" and placed:
            p = os.path.join(placed, spec["file"])
            if os.path.isdir(p):
                raise ConfigError(
                    f"downloads.{key}.file: {p} is a directory; place the file itself there ({spec['source']})"
                )


def check_world(config: dict) -> None:
    """The world section builds (each WorldConfig's own bounds); with ``world.wikitext`` the Wikitext files lie in
    one folder of their own, so that the two world rules never claim the same file."""
    if "world" not in config:
        return
    from mendrepro.data.synthetic import world_config, world_folder

    for corpus, where in ((None, "world"), ("wikitext", "world.wikitext")):
        try:
            world_config(config["world"], corpus)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
    if "wikitext" not in config["world"]:
        return
    data = config["data"]
    wiki = {key: world_folder(data[key]) for key in ("wiki_train", "wiki_dev")}
    if wiki["wiki_train"] != wiki["wiki_dev"]:
        raise ConfigError(
            f"data.wiki_dev: with world.wikitext both Wikitext files come from one world, so it must lie in "
            f"{wiki['wiki_train']} as data.wiki_train does, got {data['wiki_dev']}"
        )
    main = world_folder(data["zsre_train"])
    if wiki["wiki_train"] == main:
        raise ConfigError(
            f"data.wiki_train: with world.wikitext the Wikitext corpus has a world of its own, so its files must lie "
            f"outside the main world's folder {main} (e.g. {main}-wikitext/wikitext/wiki.train.raw), got "
            f"{data['wiki_train']}"
        )


def check_edit_params(config: dict) -> None:
    """Every ``models.<model>.edit_params`` entry is a regular expression (the training job would fail on it)."""
    for name, m in config["models"].items():
        for i, pattern in enumerate(m.get("edit_params", [])):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ConfigError(
                    f"models.{name}.edit_params[{i}]: {pattern!r} is not a regular expression ({e.msg} at position "
                    f"{e.pos}); entries are Python regular expressions of parameter names"
                ) from None


def check_config(config: dict, schema: dict) -> list[str]:
    """Every check above, in the order that makes the first failure the most useful: unknown top-level keys, the
    schema, names, overrides, data paths, the planned runs. Returns the notes of :func:`check_runs`."""
    known = list(schema["properties"])
    for key in config:
        if key not in known:
            raise ConfigError(f"config: unknown top-level key '{key}'{_suggest(key, known)}; keys: {', '.join(known)}")
    _schema_error(config, schema, ())
    check_names(config)
    check_edit_params(config)
    try:
        check_editors(config)  # every editor's kind and typed options (the workflow's own call follows, a no-op)
        table5_k_scaling(config)  # Table 5's declared width rule against the model's d_model, its k in batches
    except ValueError as e:
        raise ConfigError(str(e)) from None
    check_overrides(config, schema)
    check_data_paths(config)
    check_world(config)
    return check_runs(config)


def load_schema(path: str | os.PathLike[str]) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


DEFAULT_CONFIG = "config/tiny.yaml"  # the Snakefile's configfile when no --configfile is given


def snakemake_config_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(config files, ``--config`` entries) of a Snakemake command line, as Snakemake reads them: each option takes
    every word after it up to the next option or ``--``. No ``--configfile``: the Snakefile's default file."""
    files: list[str] = []
    entries: list[str] = []
    into: list[str] | None = None
    for arg in args:
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in ("--configfile", "--configfiles", "--config", "-C"):
            into = entries if name in ("--config", "-C") else files
            if eq:
                into.append(value)
        elif arg.startswith("-"):
            into = None
        elif into is not None:
            into.append(arg)
    return files or [DEFAULT_CONFIG], entries


def main(argv: list[str] | None = None) -> int:
    """``python -m mendrepro.checks [--schema S] FILE...``: the files as Snakemake would merge them, checked.
    ``python -m mendrepro.checks --snakemake ARGS...``: the config files and ``--config`` values of a Snakemake
    command line (the Makefile's targets run this before Snakemake, whose own loader names no file or line)."""
    import argparse

    argv = sys.argv[1:] if argv is None else list(argv)
    schema_path = str(Path(__file__).resolve().parents[2] / "config/schema.yaml")
    entries: list[str] = []
    if argv[:1] == ["--snakemake"]:
        files, entries = snakemake_config_args(argv[1:])
    else:
        p = argparse.ArgumentParser(prog="python -m mendrepro.checks", description=main.__doc__)
        p.add_argument("files", nargs="+", help="config files, merged in order (later keys win, as --configfile)")
        p.add_argument("--schema", default=schema_path)
        args = p.parse_args(argv)
        files, schema_path = args.files, args.schema
    config: dict = {}
    try:
        schema = load_schema(schema_path)
        for path in files:
            _merge(config, read_config_file(path))
        if entries:
            from snakemake.cli import parse_config  # how Snakemake itself reads --config

            try:
                overrides = parse_config(entries)
            except ValueError as e:
                raise ConfigError(f"--config {' '.join(entries)}: {e}") from None
            _merge(config, coerce_overrides(overrides, schema))
        notes = check_config(config, schema)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if argv[:1] != ["--snakemake"]:  # before Snakemake, which prints the notes itself: quiet unless wrong
        print("\n".join([*notes, f"ok: {' '.join(files)}"]))
    return 0


def _merge(into: dict, new: dict) -> None:
    """Snakemake's update_config: nested mappings merged, anything else replaced."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


if __name__ == "__main__":
    sys.exit(main())
