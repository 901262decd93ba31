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
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(f"{where}: YAML error: {problem}" + (f" ({context})" if context else "") + hint) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config file is a mapping of keys (profile, seeds, ...), got {_short(data)}{hint}")
    return data


def check_config_files(paths: list[str]) -> None:
    """Each config file reads as a mapping (:func:`read_config_file`)."""
    for path in paths:
        read_config_file(path)


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
        message += f"; keys: {', '.join(error.schema['properties'])}"
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
            from mendrepro.data.synthetic import WorldConfig

            sizes[task] = (WorldConfig(**config["world"]).n_dev_facts, "world.n_dev_facts")
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
    """No data path is a directory (each seed's path, for the per-seed self-samples)."""
    for key, path in config["data"].items():
        if key in ("placed", "mirror") or not isinstance(path, str):
            continue
        for seed in config["seeds"]:
            p = path.format(seed=seed) if "{seed}" in path else path
            if os.path.isdir(p):
                raise ConfigError(f"data.{key}: {p} is a directory; a data path names one file")


def check_config(config: dict, schema: dict) -> list[str]:
    """Every check above, in the order that makes the first failure the most useful: unknown top-level keys, the
    schema, names, overrides, data paths, the planned runs. Returns the notes of :func:`check_runs`."""
    known = list(schema["properties"])
    for key in config:
        if key not in known:
            raise ConfigError(f"config: unknown top-level key '{key}'{_suggest(key, known)}; keys: {', '.join(known)}")
    _schema_error(config, schema, ())
    check_names(config)
    try:
        check_editors(config)  # every editor's kind and typed options (the workflow's own call follows, a no-op)
        table5_k_scaling(config)  # Table 5's declared width rule against the model's d_model, its k in batches
    except ValueError as e:
        raise ConfigError(str(e)) from None
    check_overrides(config, schema)
    check_data_paths(config)
    return check_runs(config)


def load_schema(path: str | os.PathLike[str]) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """``python -m mendrepro.checks [--schema S] FILE...``: the files as Snakemake would merge them, checked."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m mendrepro.checks", description=main.__doc__)
    p.add_argument("files", nargs="+", help="config files, merged in order (later keys win, as --configfile)")
    p.add_argument("--schema", default=str(Path(__file__).resolve().parents[2] / "config/schema.yaml"))
    args = p.parse_args(argv)
    config: dict = {}
    try:
        for path in args.files:
            _merge(config, read_config_file(path))
        for note in check_config(config, load_schema(args.schema)):
            print(note)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ok: {' '.join(args.files)}")
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
