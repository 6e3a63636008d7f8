"""What a jobs-API tenant may decide, and what it may not: the job's extension is input, never configuration.

The operator's `jobs.base_config` decides; a job's `tunesmith: {config: {...}}` may set only the key paths in
`jobs.tenant_keys` (hyperparameters by default), and never the ones in `NEVER` (where the model is registered, its
name, the data and output paths, the jobs settings). `model` (and a distillation teacher, where the operator lets
tenants set one) must match `jobs.allowed_models` or be one of the tenant's own fine-tuned models. Registered names
live in the tenant's namespace, `ft-<owner>-<base>[-<suffix>]`, and are owned (`registry.owner`): no job adds a
version to a model another owner registered. A job can add gates, never remove the team's.

Errors a tenant sees name their key, their file and line, their gate; never another file's contents, a server
path or a traceback (`tenant_message`); the operator's log keeps the full error with the job id.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from tunesmith.config.jobs import DEFAULT_TENANT_KEYS, NEVER, covered  # noqa: F401 (re-exported)

EXTENSION_KEYS = ("config",)

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
# an absolute path (POSIX or Windows drive) that is not part of a word or a URL
_ABS_PATH = re.compile(r"(?<![\w.:/])(?:/|[A-Za-z]:\\)[^\s'\"`,;()<>]*")


class TenantError(ValueError):
    """A job asked for something its tenant may not: the API answers 400 with `param`."""

    def __init__(self, message: str, param: str, code: str = "not_allowed"):
        self.message, self.param, self.code = message, param, code
        super().__init__(message)


def leaf_paths(tree: dict, prefix: str = "") -> list[str]:
    out: list[str] = []
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += leaf_paths(v, path + ".")
        else:
            out.append(path)
    return out


def check_extension(ext, tenant_keys) -> dict:
    """The extension's config part, every key path checked against the allow-list (TenantError otherwise)."""
    if ext is None:
        return {}
    if not isinstance(ext, dict):
        raise TenantError("tunesmith: must be an object like {\"config\": {...}}", "tunesmith", "invalid_extension")
    for key in ext:
        if key not in EXTENSION_KEYS:
            hint = (" (the registered name is ft-<owner>-<base>[-<suffix>]: set `suffix`)" if key == "name" else "")
            raise TenantError(f"tunesmith.{key}: not a key a job may set{hint}; a job may set tunesmith.config",
                              f"tunesmith.{key}")
    config = ext.get("config") or {}
    if not isinstance(config, dict):
        raise TenantError("tunesmith.config: must be an object of tunesmith config keys", "tunesmith.config",
                          "invalid_extension")
    allowed = [k for k in tenant_keys if not covered(k, NEVER)]
    for path in leaf_paths(config):
        if covered(path, NEVER) or not covered(path, allowed):
            raise TenantError(f"tunesmith.config.{path}: a job may not set this key; this API lets jobs set "
                              f"{', '.join(allowed) or 'no keys'} (the operator's jobs.tenant_keys)",
                              f"tunesmith.config.{path}")
    return config


def merge_gates(team, job) -> object:
    """The team's gates plus the job's: rules are appended, require_significant_uplift can only turn on."""
    def parts(g):
        if g is None:
            return [], False
        if isinstance(g, list):
            return list(g), False
        if isinstance(g, dict):
            return list(g.get("rules") or []), bool(g.get("require_significant_uplift"))
        raise TenantError("tunesmith.config.gates: a list of rules like 'loss <= 2'", "tunesmith.config.gates",
                          "invalid_extension")
    team_rules, team_sig = parts(team)
    job_rules, job_sig = parts(job)
    rules = team_rules + [r for r in job_rules if r not in team_rules]
    return {"rules": rules, "require_significant_uplift": team_sig or job_sig}


def model_allowed(ref: str, allowed_models, owned) -> bool:
    """`ref` matches an operator's pattern (fnmatch; local dirs compared resolved) or is one of the tenant's."""
    if ref in owned:
        return True
    for pattern in allowed_models:
        if fnmatch.fnmatchcase(ref, pattern):
            return True
        if pattern.startswith(("/", ".", "~")) and ref.startswith(("/", ".", "~")):
            try:
                if Path(ref).expanduser().resolve() == Path(pattern).expanduser().resolve():
                    return True
            except (OSError, RuntimeError):
                continue
    return False


def check_model(ref: str, allowed_models, owned, param: str = "model") -> None:
    # The same answer whether a path exists on the API host or not: nothing about the host's files leaks.
    if not model_allowed(ref, allowed_models, owned):
        listed = ", ".join(allowed_models) or "none"
        raise TenantError(f"{param}: {ref!r} is not a model this API fine-tunes; use one of {listed} (the "
                          "operator's jobs.allowed_models) or one of this key's fine-tuned models (GET /v1/models)",
                          param, "model_not_found")


def namespaced_name(owner: str, model: str, suffix: str | None) -> str:
    """`ft-<owner>-<base>[-<suffix>]`, in registry-name characters."""
    owner_part = _NAME_BAD.sub("-", owner).strip("-.") or "tenant"
    base = Path(str(model).removeprefix("builtin:").split(":")[0]).name
    base = _NAME_BAD.sub("-", base).strip("-.") or "model"
    if base.startswith(f"ft-{owner_part}-"):  # a tenant's own fine-tuned model trained again: no ft-a-ft-a-...
        base = base.removeprefix(f"ft-{owner_part}-")
    name = f"ft-{owner_part}-{base}" + (f"-{_NAME_BAD.sub('-', suffix).strip('-.')}" if suffix else "")
    return name[:100].rstrip("-.")


def tenant_message(message: str, replacements: dict[str, str]) -> str:
    """An error as a tenant may see it: their files by name, every other server path hidden."""
    for path, shown in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        if path:
            message = message.replace(path, shown)
    return _ABS_PATH.sub("<server path>", message)
