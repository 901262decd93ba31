# Helpers shared by the rules: paths, and the experiment JSON each command receives.
import json
import re
import sys

PROFILE = config["profile"]
RES = f"results/{PROFILE}"
FIG = f"figures/{PROFILE}"
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
        per_model = spec.get("models", {}).get(getattr(wildcards, "model", ""), {})
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


def data_file(key):
    return config["data"][key]


def task_files(wildcards):
    """The data files a task reads, as a name -> path mapping (a model whose locality text is OpenWebText reads
    owt_* instead of the Wikitext-103 files)."""
    keys = TASK_FILES[wildcards.task]
    model = config["models"].get(getattr(wildcards, "model", ""), {})
    if model.get("loc_source") == "openwebtext":
        keys = [k.replace("wiki_", "owt_") if k.startswith("wiki_") else k for k in keys]
    return {k: data_file(k) for k in keys}


def task_files_json(wildcards):
    return json.dumps(task_files(wildcards), sort_keys=True)


def source_json(wildcards):
    return json.dumps(config["models"][wildcards.model]["source"], sort_keys=True)


def model_dir(name):
    return f"{RES}/models/{name}"


def model_input(wildcards):
    return model_dir(wildcards.model)


def editor_entry(name):
    if name not in config["editors"]:
        raise ValueError(f"editor '{name}' is not in config['editors'] ({sorted(config['editors'])})")
    return config["editors"][name]


def is_learned(editor):
    return editor_entry(editor)["kind"] in ("mend", "ke", "enn")


def experiment(task, model, editor=""):
    """The experiment mapping one command receives: model spec, task and editor options, loop settings."""
    m = dict(config["models"][model])
    if m["task"] != task:
        raise ValueError(f"model '{model}' is configured for task '{m['task']}', not '{task}'")
    exp = {
        "profile": PROFILE,
        "seed": config["seed"],
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
    # A model's own training budget (e.g. fewer steps for the larger stand-ins) is the most specific setting.
    exp["train"].update(m.get("train", {}))
    return exp


def experiment_json(wildcards):
    return json.dumps(
        experiment(wildcards.task, wildcards.model, getattr(wildcards, "editor", "")), sort_keys=True
    )


def base_model_json(model):
    """The experiment of a rule that builds or samples the base model itself: without the editors' training and
    evaluation settings, so changing those does not re-run pre-training."""
    exp = experiment(config["models"][model]["task"], model)
    return json.dumps({k: v for k, v in exp.items() if k not in ("train", "eval")}, sort_keys=True)


def pretrain_json(wildcards):
    return base_model_json(wildcards.model)


def checkpoint_input(wildcards):
    if is_learned(wildcards.editor):
        return f"{RES}/{wildcards.task}/{wildcards.model}/{wildcards.editor}/editor.pt"
    return []


def ckpt_arg(wildcards, input):
    return f"--ckpt {input.ckpt}" if input.ckpt else ""


TABLES = ("table3", "table4")


def table_metrics(table):
    """The single-edit metrics files one table is rendered from (its experiments x its editors)."""
    t = config["tables"][table]
    for e in t["experiments"]:
        experiment(e["task"], e["model"])  # fails at DAG start on a model configured for another task
    return [
        f"{RES}/{e['task']}/{e['model']}/{ed}/eval_k1/metrics.json"
        for e in t["experiments"]
        for ed in t["editors"]
    ]


def table_outputs(table):
    return [f"{FIG}/{table}.{ext}" for ext in ("md", "tex", "csv")]


def all_targets():
    return [path for table in TABLES if table in config["tables"] for path in table_outputs(table)]
