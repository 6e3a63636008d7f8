"""An API job -> the tunesmith Config it runs with.

The config starts from `jobs.base_config` (a team's YAML: gates, data checks, training defaults), then the job's
`tunesmith.config` extension (only the keys in `jobs.tenant_keys`; its gates are added to the team's: see
tunesmith.jobs.tenancy), then the OpenAI fields: `model` -> model.base, the uploaded files -> data (the
validation file is the test split the gates are measured on; without one tunesmith splits the training file),
`hyperparameters` (n_epochs, batch_size, learning_rate_multiplier x the config's learning rate), `seed`, and a
registry name in the tenant's namespace, `ft-<owner>-<base>[-<suffix>]`, owned by the tenant. Errors name the
config key path (TenantError, ConfigError).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tunesmith.config import Config, config_from_dict
from tunesmith.jobs.tenancy import check_extension, check_model, merge_gates, namespaced_name


def owned_models(store, owner: str) -> list[str]:
    """The `NAME:VERSION` of every fine-tuned model this owner's jobs registered and it has not deleted, newest
    first."""
    models, after = [], None
    deleted = store.deleted_models(owner)
    while True:
        page, more = store.list_jobs(owner, after=after, limit=100)
        models += [j["fine_tuned_model"] for j in page if j["status"] == "succeeded" and j["fine_tuned_model"]
                   and j["fine_tuned_model"] not in deleted]
        if not more or not page:
            return models
        after = page[-1]["id"]


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def job_config(api_cfg: Config, job: dict, store, *, owner: str | None = None, resolve_owned: bool = False) -> Config:
    """The job's Config. Raises TenantError (a key or model the tenant may not use), ConfigError with key paths,
    or FileNotFoundError for a file that disappeared. `resolve_owned` (the worker) turns the tenant's own
    `NAME:VERSION` base into its registered model folder."""
    owner = owner or job.get("organization_id")
    if not owner:
        raise ValueError("a job has an owner (its API key's)")
    jobs_cfg = api_cfg.jobs
    raw: dict = {}
    if jobs_cfg.base_config:
        path = api_cfg.resolve_path(jobs_cfg.base_config)
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    tenant = check_extension(job.get("tunesmith"), jobs_cfg.tenant_keys)
    owned = owned_models(store, owner)
    check_model(job["model"], jobs_cfg.allowed_models, owned)
    teacher = ((tenant.get("method") or {}).get("distill") or {}).get("teacher")
    if teacher is not None:
        check_model(str(teacher), jobs_cfg.allowed_models, owned, param="tunesmith.config.method.distill.teacher")
    team_gates = raw.get("gates")
    raw = deep_merge(raw, {k: v for k, v in tenant.items() if k != "gates"})
    if "gates" in tenant or team_gates is not None:
        raw["gates"] = merge_gates(team_gates, tenant.get("gates"))
    raw.setdefault("task", "causal-lm")
    raw["name"] = namespaced_name(owner, job["model"], job.get("user_provided_suffix", job.get("suffix")))
    base = job["model"]
    if resolve_owned and base in owned:
        from tunesmith.registry import model_dir_for

        name, _, version = base.rpartition(":")
        base = str(model_dir_for(name, version, registry=api_cfg.registry))
    raw["model"] = {**(raw.get("model") or {}), "base": base}
    train = store.file_path(job["training_file"])
    if train is None or not train.is_file():
        raise FileNotFoundError(f"training_file {job['training_file']} is no longer stored")
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in ("path", "train", "eval", "test")}
    if job.get("validation_file"):
        data.update(train=str(train), test=str(store.file_path(job["validation_file"])))
    else:
        data["path"] = str(train)
    data.setdefault("format", "jsonl")
    raw["data"] = data
    raw["output_dir"] = str(Path(jobs_cfg.state_dir).resolve() / "runs")
    raw["registry"] = {**api_cfg.registry.model_dump(mode="json"), "owner": owner}
    raw.pop("jobs", None)
    if job.get("seed"):
        raw["seed"] = int(job["seed"])
    hp = job.get("hyperparameters") or {}
    training = dict(raw.get("training") or {})
    if isinstance(hp.get("n_epochs"), int | float):
        training["epochs"] = hp["n_epochs"]
    if isinstance(hp.get("batch_size"), int):
        training["batch_size"] = hp["batch_size"]
    raw["training"] = training
    cfg = config_from_dict(raw, source="job config")
    mult = hp.get("learning_rate_multiplier")
    if isinstance(mult, int | float):
        raw["training"]["learning_rate"] = cfg.training.learning_rate * float(mult)
        cfg = config_from_dict(raw, source="job config")
    return cfg
