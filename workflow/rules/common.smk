# Helpers shared by the rules: paths, and the experiment JSON each command receives.
import json
import os
import re
import sys

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
LAUNCH = config["launcher"].replace("{python}", PY)
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


BATCHED = re.compile(r"(?P<base>.+)-k(?P<k>\d+)")


def table5_batches():
    """k -> the training overrides of Table 5's editors trained with k edits per step (k > 1)."""
    t = config["tables"].get("table5", {})
    return {b["k"]: b.get("train", {}) for b in t.get("batches", []) if b["k"] > 1}


def editor_entry(name):
    """The resolved config entry of editor ``name``: a configured editor, a `variant_of` one (its base entry with
    the variant's options on top: the Table 6 ablations), or ``<editor>-k<k>``, a Table 5 editor trained and
    evaluated with k edits at once."""
    editors = config["editors"]
    if name in editors:
        e = dict(editors[name])
        base = e.pop("variant_of", None)
        if base is None:
            return e
        if base not in editors or "variant_of" in editors[base]:
            raise ValueError(f"editor '{name}': variant_of '{base}' must name a configured, non-variant editor")
        b = editor_entry(base)
        return {
            **b,
            **{k: v for k, v in e.items() if k != "options"},
            "options": {**b.get("options", {}), **e.get("options", {})},
        }
    m = BATCHED.fullmatch(name)
    t5 = config["tables"].get("table5", {})
    if m and m["base"] in t5.get("editors", []) and int(m["k"]) in table5_batches():
        k = int(m["k"])
        b = editor_entry(m["base"])
        return {
            **b,
            "eval": {**b.get("eval", {}), "k": k, "n_edits": t5.get("n_edits", config["eval"]["n_edits"])},
            "batch_train": {"edits_per_step": k, **table5_batches()[k]},
        }
    raise ValueError(
        f"editor '{name}' is not in config['editors'] ({sorted(editors)}) nor a Table 5 batched editor "
        f"(<editor>-k<k> for tables.table5 editors and batches)"
    )


def editor_dir(editor, k):
    """The editor id of ``editor`` in Table 5's column k: itself at k = 1, else its k-edit version."""
    return editor if k == 1 else f"{editor}-k{k}"


def is_learned(editor):
    return editor_entry(editor)["kind"] in ("mend", "ke", "enn")


def experiment(task, model, editor="", seed=0):
    """The experiment mapping one command receives: model spec, task and editor options, loop settings. The run's
    seed drives pre-training, the editor's initialisation and its training; the evaluation's edits (eval.seed) are
    the same for every seed."""
    m = dict(config["models"][model])
    if m["task"] != task:
        raise ValueError(f"model '{model}' is configured for task '{m['task']}', not '{task}'")
    exp = {
        "profile": PROFILE,
        "seed": int(seed),
        "task": task,
        "model": {"name": model, **{k: v for k, v in m.items() if k not in ("task", "pretrain", "train")}},
        "pretrain": m.get("pretrain", {}),
        "task_options": config["tasks"].get(task, {}),
        "train": dict(config["train"]),
        "eval": dict(config["eval"]),
    }
    if editor:
        e = editor_entry(editor)
        # Options that differ per task (ENN's c_base: 1 for FEVER/zsRE, 10 for Wikitext) override the defaults.
        options = {**e.get("options", {}), **e.get("per_task", {}).get(task, {})}
        exp.update(editor=editor, editor_kind=e["kind"], editor_options=options)
        exp["train"].update(e.get("train", {}))
        exp["eval"].update(e.get("eval", {}))
    # A model's own training budget (e.g. fewer steps for the larger stand-ins) overrides the editor's, except
    # an editor's budget for that one model (per_model) and a Table 5 editor's k-edit budget.
    exp["train"].update(m.get("train", {}))
    if editor:
        exp["train"].update(e.get("per_model", {}).get(model, {}).get("train", {}))
        exp["train"].update(e.get("batch_train", {}))
    exp["train"]["seed"] = int(seed)
    if editor:
        # The editor's learning rate as the grid chose it (`snakemake lr_grid`; config train_lr), if listed.
        lr = config.get("train_lr", {}).get(f"{task}/{model}/{editor}")
        if lr is not None:
            exp["train"]["lr"] = float(lr)
    return exp


def experiment_json(wildcards):
    return json.dumps(
        experiment(wildcards.task, wildcards.model, getattr(wildcards, "editor", ""), wildcards.seed), sort_keys=True
    )


def base_model_json(model, seed):
    """The experiment of a job that builds or samples the base model itself: without the editors' training and
    evaluation settings, so changing those does not re-run pre-training."""
    exp = experiment(config["models"][model]["task"], model, seed=seed)
    return json.dumps({k: v for k, v in exp.items() if k not in ("train", "eval")}, sort_keys=True)


def pretrain_json(wildcards):
    return base_model_json(wildcards.model, wildcards.seed)


def sampler_json(wildcards):
    return base_model_json(config["tasks"]["wikitext"]["sampler_model"], wildcards.seed)


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


def lr_grid_runs():
    """Every grid run's training summary: learned editors of every table x the grid's rates (first seed)."""
    return [
        f"{run_dir(SEEDS[0], *run)}/lr_grid/lr{lr:g}.json" for run in learned_runs() for lr in LR_GRID.get("lrs", [])
    ]


def lr_grid_experiment_json(wildcards):
    exp = experiment(wildcards.task, wildcards.model, wildcards.editor, wildcards.seed)
    # The grid's budget, or the editor's own when smaller (Table 5's large-k editors).
    exp["train"].update(lr=float(wildcards.lr), steps=min(LR_GRID["steps"], exp["train"]["steps"]))
    return json.dumps(exp, sort_keys=True)


def out_stem(wildcards, output):
    """A report command's output stem: its first output without the extension (figures/tiny/table4.md -> ...4)."""
    return os.path.splitext(output[0])[0]


def world_dir(wildcards, output):
    """The world's folder: two levels above its first file (world/zsre/<file>)."""
    return os.path.dirname(os.path.dirname(output[0]))


def world_input_dir(wildcards, input):
    return os.path.dirname(os.path.dirname(input.world[0]))


def check_train_lr():
    """Every `train_lr` key names a learned editor that some table trains (a stale or misspelt key fails here)."""
    trained = {"%s/%s/%s" % run for run in learned_runs()}
    unknown = sorted(set(config.get("train_lr", {})) - trained)
    if unknown:
        raise ValueError(
            f"train_lr: {unknown} name no learned editor of the configured tables; keys are task/model/editor, "
            f"e.g. {sorted(trained)[:3]}"
        )


check_train_lr()
