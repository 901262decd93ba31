# Helpers shared by the rules: paths, and the experiment JSON each command receives.
import json
import os
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError

# The experiment resolution and the editors' options live in the package (torch-free imports); the checkout's copy
# is put first so a Snakemake without the package installed (e.g. --sdm conda) reads the same code.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from mendrepro.config import base_model_experiment, check_editors, resolve_experiment, table5_k_scaling
from mendrepro.config import is_learned as _is_learned
from mendrepro.data.synthetic import world_fields, world_folder

# Every editor's kind and options, typed: a typo fails here, naming the editor, the key and the allowed values.
# Table 5's width scaling (tables.table5.k_scaling): its declared scaled k must be what the rule gives for the
# model's d_model, and every k must have its batch, before any job runs.
try:
    check_editors(config)
    K_SCALING = table5_k_scaling(config)
except ValueError as e:
    raise WorkflowError(f"config: {e}") from None

PROFILE = config["profile"]
RES = f"results/{PROFILE}"
# Every seeded output (base models pre-trained here, editors, evaluations) lies under {RES}/seed<s>/; the tables
# aggregate over the config's seeds. The default seeds [0] write figures/<profile>/, any other list its own folder
# (e.g. `--config 'seeds=[1]'` writes figures/<profile>/seeds-1/), so runs of other seeds sit side by side.
SEEDS = [int(s) for s in config["seeds"]]
FIG = f"figures/{PROFILE}" if SEEDS == [0] else f"figures/{PROFILE}/seeds-" + "-".join(str(s) for s in SEEDS)
SEEDED = f"{RES}/seed{{seed}}"
# "{python}" in the launcher is the interpreter running Snakemake, so rules use the same environment; under
# --sdm conda/apptainer it is the environment's own `python` (the host's interpreter is not in there).
_IN_ENV = {m.name.lower() for m in workflow.deployment_settings.deployment_method} & {"conda", "apptainer"}
PY = "python" if _IN_ENV else sys.executable
# The conda environment holds the dependencies only (envs/mendrepro.yaml): the package comes from this checkout.
if "conda" in _IN_ENV:
    PY = f"PYTHONPATH={shlex.quote(os.path.join(workflow.basedir, 'src'))} python"
LAUNCH = config["launcher"].replace("{python}", PY)

# The fork server of a local run (src/mendrepro/forkserver.py): each job's `python -m mendrepro` runs in a child of
# one process that imported torch and transformers once, instead of importing them itself (about 4-5 s of each of
# the tiny run's jobs). Only the plain launcher in a local run; cluster jobs and conda/apptainer run as written.
_FORK_SERVER = []


def start_fork_server():
    """Start the run's fork server where the config asks for it (Snakemake's onstart)."""
    if (
        config.get("fork_server")
        and workflow.local_exec
        and not _IN_ENV
        and config["launcher"] == "{python} -m mendrepro"
    ):
        from mendrepro import forkserver

        _FORK_SERVER.append(forkserver.start(Path(f"{RES}/logs/fork_server.log")))
        os.environ[forkserver.ENV] = _FORK_SERVER[0][1]


def stop_fork_server():
    """Stop the run's fork server, if one was started (onsuccess, onerror)."""
    from mendrepro import forkserver

    while _FORK_SERVER:
        forkserver.stop(*_FORK_SERVER.pop())
    os.environ.pop(forkserver.ENV, None)


# Data files fetched (paper profile) rather than generated (tiny profile), and models taken from a checkpoint
# (`source`) rather than pre-trained here.
DOWNLOADS = config.get("downloads", {})
SOURCED_MODELS = [m for m, e in config["models"].items() if "source" in e]
PRETRAINED_MODELS = [m for m in config["models"] if m not in SOURCED_MODELS]


# What a training or evaluation job asks of the scheduler (SLURM reads gpu, mem_mb, runtime in minutes); the
# config's `resources` section overrides these CPU defaults, per rule and optionally per model.
RESOURCE_DEFAULTS = {"gpu": 0, "mem_mb": 4000, "runtime": 60}


def rule_resource(rule, key):
    """A callable giving one resource of one rule's job: config resources.<rule>[.models.<model>].<key>."""

    def value(wildcards):
        spec = config.get("resources", {}).get(rule, {})
        # Per model (training, evaluation) or per probed size (memory_probe).
        key_name = getattr(wildcards, "model", None) or getattr(wildcards, "size", "")
        per_model = spec.get("models", {}).get(key_name, {})
        return per_model.get(key, spec.get(key, RESOURCE_DEFAULTS[key]))

    return value


def one_of(names):
    """A wildcard constraint matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def mirror_arg():
    mirror = config["data"].get("mirror")
    return f"--mirror {mirror}" if mirror else ""


TASK_FILES = {
    "zsre": ["zsre_train", "zsre_dev", "nq_train", "nq_dev"],
    "fever": ["fever_train", "fever_dev"],
    "wikitext": ["wiki_train", "wiki_dev", "self_sample_train", "self_sample_dev"],
}
WORLD_KEYS = [k for keys in TASK_FILES.values() for k in keys if not k.startswith("self_sample")]
DATA_KEYS = [k for keys in TASK_FILES.values() for k in keys]
# The Wikitext corpus may come from a world of its own (world.wikitext: the fields it changes), written by its own
# rule with its own tokenizer; the models of the Wikitext task pre-train on it, every other model on the main world.
WIKI_WORLD_KEYS = ["wiki_train", "wiki_dev"]
OWN_WIKI_WORLD = "wikitext" in config.get("world", {})
MAIN_WORLD_KEYS = [k for k in WORLD_KEYS if not (OWN_WIKI_WORLD and k in WIKI_WORLD_KEYS)]
MAIN_WORLD = world_fields(config.get("world", {}))
WIKI_WORLD = world_fields(config.get("world", {}), "wikitext")
TOKENIZER = f"{RES}/tokenizer/tokenizer.json"
WIKI_TOKENIZER = f"{RES}/tokenizer-wikitext/tokenizer.json" if OWN_WIKI_WORLD else TOKENIZER
# (rule name, data keys, world section, tokenizer) of each world rule.
WORLDS = [("world", MAIN_WORLD_KEYS, MAIN_WORLD, TOKENIZER)]
if OWN_WIKI_WORLD:
    WORLDS.append(("world_wikitext", WIKI_WORLD_KEYS, WIKI_WORLD, WIKI_TOKENIZER))


def data_file(key, seed=None):
    """The path of data file ``key``; a path with ``{seed}`` (the tiny profile's self-samples, drawn from a base
    model pre-trained per seed) is filled in when ``seed`` is given, else left as a wildcard."""
    path = config["data"][key]
    return path.format(seed=seed) if seed is not None else path


def task_files(wildcards):
    """The data files a task reads, as a name -> path mapping (a model whose locality text is OpenWebText reads
    owt_* instead of the Wikitext-103 files)."""
    keys = TASK_FILES[wildcards.task]
    model = config["models"].get(getattr(wildcards, "model", ""), {})
    if model.get("loc_source") == "openwebtext":
        keys = [k.replace("wiki_", "owt_") if k.startswith("wiki_") else k for k in keys]
    return {k: data_file(k, wildcards.seed) for k in keys}


def task_files_json(wildcards):
    return json.dumps(task_files(wildcards), sort_keys=True)


def source_json(wildcards):
    return json.dumps(config["models"][wildcards.model]["source"], sort_keys=True)


def model_dir(name, seed):
    """A base model: a fetched checkpoint (one for all seeds) or one pre-trained here per seed."""
    return f"{RES}/models/{name}" if name in SOURCED_MODELS else f"{RES}/seed{seed}/models/{name}"


def model_input(wildcards):
    return model_dir(wildcards.model, wildcards.seed)


def editor_dir(editor, k):
    """The editor id of ``editor`` in Table 5's column k: itself at k = 1, else its k-edit version."""
    return editor if k == 1 else f"{editor}-k{k}"


def is_learned(editor):
    return _is_learned(config, editor)


def experiment(task, model, editor="", seed=0):
    """The experiment mapping one command receives (mendrepro.config.resolve_experiment)."""
    return resolve_experiment(config, task, model, editor, seed)


def experiment_json(wildcards):
    return json.dumps(
        experiment(wildcards.task, wildcards.model, getattr(wildcards, "editor", ""), wildcards.seed), sort_keys=True
    )


def pretrain_json(wildcards):
    return json.dumps(base_model_experiment(config, wildcards.model, wildcards.seed), sort_keys=True)


def sampler_json(wildcards):
    sampler = config["tasks"]["wikitext"]["sampler_model"]
    return json.dumps(base_model_experiment(config, sampler, wildcards.seed), sort_keys=True)


def checkpoint_input(wildcards):
    if is_learned(wildcards.editor):
        return f"{RES}/seed{wildcards.seed}/{wildcards.task}/{wildcards.model}/{wildcards.editor}/editor.pt"
    return []


def ckpt_arg(wildcards, input):
    return f"--ckpt {input.ckpt}" if input.ckpt else ""


TABLES = ("table3", "table4", "table5", "table6")


def run_dir(seed, task, model, editor):
    return f"{RES}/seed{seed}/{task}/{model}/{editor}"


def metrics_path(task, model, editor, k=1, seed=0):
    return f"{run_dir(seed, task, model, editor)}/eval_k{k}/metrics.json"


def table_metrics(table):
    """The metrics files one table is rendered from: its experiments x its editors, one edit at a time (for
    Table 5, x its batch sizes k, each k's editors trained and evaluated with k edits at once), x the seeds."""
    t = config["tables"][table]
    for e in t["experiments"]:
        experiment(e["task"], e["model"])  # fails at DAG start on a model configured for another task
    ks = [b["k"] for b in t.get("batches", [{"k": 1}])]
    return [
        metrics_path(e["task"], e["model"], editor_dir(ed, k), k, seed)
        for seed in SEEDS
        for e in t["experiments"]
        for ed in t["editors"]
        for k in ks
    ]


def table_args(table):
    """Arguments of one table's report command beyond the common ones: Table 5's checked width rule."""
    if table == "table5" and K_SCALING is not None:
        return f"--k-scaling {shlex.quote(K_SCALING.to_json())}"
    return ""


def table_outputs(table):
    return [f"{FIG}/{table}.{ext}" for ext in ("md", "tex", "csv")]


def learned_runs(tables=TABLES):
    """(task, model, editor id) of every learned editor the given tables train (Table 5's k-edit editors too), in
    table order, once each."""
    seen = []
    for table in tables:
        t = config["tables"].get(table, {})
        ks = [b["k"] for b in t.get("batches", [{"k": 1}])]
        for e in t.get("experiments", []):
            for ed in t.get("editors", []):
                for k in ks:
                    run = (e["task"], e["model"], editor_dir(ed, k))
                    if is_learned(ed) and run not in seen:
                        seen.append(run)
    return seen


def memory_train_metrics():
    """The training summaries of the memory figure: every learned editor of Tables 3 and 4 (one edit per step),
    first seed (peak memory does not depend on the seed)."""
    return [f"{run_dir(SEEDS[0], *run)}/train.json" for run in learned_runs(("table3", "table4"))]


def claims_train_metrics():
    """The training summaries of every learned editor of every table and seed (the claims table flags any that
    hit its step cap)."""
    return [f"{run_dir(seed, *run)}/train.json" for seed in SEEDS for run in learned_runs()]


PROBE = config.get("memory_probe", {})
PROBE_SIZES = PROBE.get("sizes", [])


def figure_outputs():
    out = []
    if memory_train_metrics():
        out += [f"{FIG}/figure3_memory.{ext}" for ext in ("png", "pdf", "csv")]
    if PROBE_SIZES:
        out += [f"{FIG}/memory_probe.{ext}" for ext in ("md", "csv", "png", "pdf")]
    return out


def claims_outputs():
    return [f"{FIG}/claims.md", f"{FIG}/claims.csv"] if any(t in config["tables"] for t in TABLES) else []


def all_targets():
    tables = [path for table in TABLES if table in config["tables"] for path in table_outputs(table)]
    return tables + figure_outputs() + claims_outputs()


# The learning-rate grid (rules in lr_grid.smk).
LR_GRID = config.get("lr_grid", {})


def lr_grid_editors():
    """(task, model, editor) of the editors the grid runs: `lr_grid.editors` where a study names some (each must be
    a learned editor some table trains), else every learned editor of every table."""
    if "editors" not in LR_GRID:
        return learned_runs()
    learned = {"%s/%s/%s" % run: run for run in learned_runs()}
    unknown = sorted(key for key in LR_GRID["editors"] if key not in learned)
    if unknown:
        raise ValueError(f"lr_grid.editors: {unknown} name no learned editor of the configured tables")
    return [learned[key] for key in LR_GRID["editors"]]


def lr_grid_runs():
    """Every grid cell's training summary: the grid's editors x its rates x its edit weights (first seed); each
    cell is its own job, so an interrupted grid resumes."""
    return [
        f"{run_dir(SEEDS[0], *run)}/lr_grid/lr{lr:g}_c{c:g}.json"
        for run in lr_grid_editors()
        for lr in LR_GRID.get("lrs", [])
        for c in LR_GRID.get("c_edits", [0.1])
    ]


# Studies (`studies` in an overlay): one table's columns for a few experiments, rendered on their own.
STUDIES = config.get("studies", {})


def study_metrics(name):
    """The metrics files of one study: its experiments x its table's editors x the seeds."""
    study = STUDIES[name]
    t = config["tables"][study["table"]]
    for e in study["experiments"]:
        experiment(e["task"], e["model"])
    return [
        metrics_path(e["task"], e["model"], ed, 1, seed)
        for seed in SEEDS
        for e in study["experiments"]
        for ed in t["editors"]
    ]


def study_train_metrics(name):
    """The training summaries of the study's learned editors (its claims flag any that hit the step cap)."""
    study = STUDIES[name]
    editors = config["tables"][study["table"]]["editors"]
    return [
        f"{run_dir(seed, e['task'], e['model'], ed)}/train.json"
        for seed in SEEDS
        for e in study["experiments"]
        for ed in editors
        if is_learned(ed)
    ]


def lr_grid_experiment_json(wildcards):
    exp = experiment(wildcards.task, wildcards.model, wildcards.editor, wildcards.seed)
    # The cell's rate and edit weight (its training loss and its checkpoint selection use that c_edit), and the
    # grid's budget, or the editor's own when smaller (Table 5's large-k editors).
    # A cell is scored at its lowest-loss checkpoint (the committed grids were run so); the budget then applies
    # to the cell's choice.
    exp["train"].update(
        lr=float(wildcards.lr),
        c_edit=float(wildcards.c_edit),
        steps=min(LR_GRID["steps"], exp["train"]["steps"]),
        checkpoint_budget=None,
    )
    return json.dumps(exp, sort_keys=True)


def lr_grid_ledger_args(wildcards, output):
    """`--ledger <the cell's file in lr_grid.ledger>` (the same path below the ledger as below results/, so each
    profile has its own folder there), or nothing without a ledger."""
    if not LR_GRID.get("ledger"):
        return ""
    cell = os.path.join(LR_GRID["ledger"], os.path.relpath(output.metrics, os.path.dirname(RES)))
    return f"--ledger {shlex.quote(cell)}"


def lr_grid_tolerance_args():
    """The selection rule's drawdown tolerances (lr_grid.tolerance) as report arguments."""
    tol = LR_GRID.get("tolerance", {})
    return " ".join(f"--tol-{kind} {tol[kind]:g}" for kind in ("accuracy", "perplexity") if kind in tol)


def out_stem(wildcards, output):
    """A report command's output stem: its first output without the extension (figures/tiny/table4.md -> ...4)."""
    return os.path.splitext(output[0])[0]


def world_dir(wildcards, output):
    return world_folder(output[0])


def world_input_dir(wildcards, input):
    return world_folder(input.world[0])


def _learns_wiki_world(model):
    return OWN_WIKI_WORLD and config["models"][model]["task"] == "wikitext"


def pretrain_world(wildcards):
    """The world files a base model pre-trains on: the Wikitext world's for a Wikitext model when it has one."""
    keys = WIKI_WORLD_KEYS if _learns_wiki_world(wildcards.model) else MAIN_WORLD_KEYS
    return [data_file(k) for k in keys]


def pretrain_tokenizer(wildcards):
    return WIKI_TOKENIZER if _learns_wiki_world(wildcards.model) else TOKENIZER


def check_train_lr():
    """Every `train_lr` / `train_c_edit` key names a learned editor that some table trains (a stale or misspelt
    key fails here)."""
    trained = {"%s/%s/%s" % run for run in learned_runs()}
    for mapping in ("train_lr", "train_c_edit"):
        unknown = sorted(set(config.get(mapping, {})) - trained)
        if unknown:
            raise ValueError(
                f"{mapping}: {unknown} name no learned editor of the configured tables; keys are task/model/editor, "
                f"e.g. {sorted(trained)[:3]}"
            )


check_train_lr()


# The paper profile's data inputs (rules in inputs.smk): hand-placed files are looked for under data.placed, then
# data.mirror; a data path (the rules' output) never lies in either folder, which the workflow only reads.
PLACED_DIR = config["data"].get("placed")
MIRROR_DIR = config["data"].get("mirror")


def _inside(path, folder):
    folder = os.path.abspath(folder)
    return os.path.commonpath([os.path.abspath(path), folder]) == folder


def check_downloads():
    for key, spec in DOWNLOADS.items():
        if spec["kind"] == "placed" and not PLACED_DIR:
            raise ValueError(f"downloads.{key} is placed by hand: set data.placed to the folder that holds such files")
        for folder, name in ((PLACED_DIR, "data.placed"), (MIRROR_DIR, "data.mirror")):
            if folder and _inside(data_file(key), folder):
                raise ValueError(
                    f"data.{key}: {data_file(key)} lies in {name} ({folder}), which the workflow only reads; "
                    f"point it at a path under {RES}/inputs/"
                )


def placed_candidates(key):
    """Where a placed file is looked for: data.placed/<file>, then data.mirror/<file> and data.mirror/<name>."""
    file = DOWNLOADS[key]["file"]
    found = [os.path.join(PLACED_DIR, file)]
    if MIRROR_DIR:
        found += [os.path.join(MIRROR_DIR, file), os.path.join(MIRROR_DIR, os.path.basename(file))]
    return list(dict.fromkeys(found))


def placed_input(key):
    """The placed file of ``key`` (its first candidate on disk), or none: the job then says where it goes."""

    def find(wildcards):
        if DOWNLOADS[key]["kind"] != "placed":
            return []
        return next((c for c in placed_candidates(key) if os.path.isfile(c)), [])

    return find


def download_spec(key):
    """The JSON spec the input command receives; a placed file's also says where it was looked for."""
    spec = {"key": key, **DOWNLOADS[key]}
    if spec["kind"] == "placed":
        where = placed_candidates(key)
        spec.update(expected=where[0], mirror_candidates=where[1:])
    return json.dumps(spec, sort_keys=True)


def placed_src_arg(wildcards, input):
    """--src of the placed file found on disk (none found: the job says where it goes)."""
    return f"--src {shlex.quote(input[0])}" if input else ""


def hub_mirror_arg(key):
    return f"--mirror {shlex.quote(MIRROR_DIR)}" if DOWNLOADS[key]["kind"] == "hub" and MIRROR_DIR else ""


check_downloads()
