"""`tunesmith api` (the OpenAI-compatible fine-tuning API), `tunesmith api keys add|list|revoke|history`,
`tunesmith worker`.

api_app is added to the app by tunesmith.cli; so is worker, registered in its place among the commands.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from tunesmith.cli.common import fail, load_cli_config

api_app = typer.Typer(help="The OpenAI-compatible fine-tuning jobs API.", invoke_without_command=True)
keys_app = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; printed once).")
api_app.add_typer(keys_app, name="keys")

ConfigOpt = typer.Option(..., "--config", "-c", help="A config whose jobs: and registry: sections apply.")


def _cfg(path: Path):
    return load_cli_config(path, [])


@api_app.callback()
def api(ctx: typer.Context, config: Path = typer.Option(None, "--config", "-c", help="Config with jobs: / registry:."),
        host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port")) -> None:
    """Serve /v1/files, /v1/fine_tuning/jobs (+ events, checkpoints, cancel), /v1/models and /v1/chat/completions."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        fail("tunesmith api needs --config (its jobs: section: database, queue, base_config)")
    import uvicorn

    from tunesmith.jobs.api import create_jobs_app

    uvicorn.run(create_jobs_app(_cfg(config)), host=host, port=port, log_level="info", access_log=False)


ReasonOpt = typer.Option(..., "--reason", help="Why (required; kept in the audit log: `tunesmith api keys history`).")
ByOpt = typer.Option(None, "--by", help="Who does it (default: $USER).")


def _who(by: str | None) -> str:
    import getpass

    return by or getpass.getuser()


@keys_app.command("add")
def keys_add(owner: str = typer.Argument(..., help="Who the key belongs to (jobs and files are per owner)."),
             config: Path = ConfigOpt,
             max_jobs: int = typer.Option(None, "--max-jobs", help="Unfinished jobs at once (default jobs.max_jobs)."),
             max_file_bytes: int = typer.Option(None, "--max-file-bytes", help="Upload limit (jobs.max_file_bytes)."),
             role: str = typer.Option("train", "--role", help="read (files, jobs, models, chat), train (also upload, "
                                      "delete, start and cancel jobs), promote (also promote and roll back models), "
                                      "admin (also delete models and manage the owner's keys)."),
             reason: str = ReasonOpt, by: str = ByOpt):
    """Create an API key; it is printed once and only its sha256 is stored. Audited (who, when, why)."""
    from tunesmith.jobs.queue import store_for
    from tunesmith.jobs.store import ROLES

    if role not in ROLES:
        fail(f"--role: one of {', '.join(ROLES)}, not {role!r}")
    if not reason.strip():
        fail("--reason: say why this key is made (kept in the audit log)")
    key = store_for(_cfg(config)).add_key(owner, max_jobs=max_jobs, max_file_bytes=max_file_bytes, role=role,
                                          who=_who(by), reason=reason)
    typer.echo(key)


@keys_app.command("list")
def keys_list(config: Path = ConfigOpt,
              owner: str = typer.Option(None, "--owner", help="Only this owner's keys.")) -> None:
    """The keys: public id, owner and role (never the keys themselves)."""
    from tunesmith.jobs.queue import store_for

    for info in store_for(_cfg(config)).list_keys(owner):
        typer.echo(f"{info.key_id}  {info.owner}  {info.role}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's public id (key_..., from `keys list`)."),
                config: Path = ConfigOpt, reason: str = ReasonOpt, by: str = ByOpt) -> None:
    """Revoke a key now (it gets 401 from its next request). Audited."""
    from tunesmith.jobs.queue import store_for

    if not reason.strip():
        fail("--reason: say why this key is revoked (kept in the audit log)")
    info = store_for(_cfg(config)).revoke_key(key_id, who=_who(by), reason=reason)
    if info is None:
        from rich.markup import escape

        fail(f"no API key {escape(key_id)!r}; see the ids with `tunesmith api keys list -c CONFIG`")
    typer.echo(f"{key_id} ({info.owner}, {info.role}) revoked")


@keys_app.command("history")
def keys_history(config: Path = ConfigOpt,
                 owner: str = typer.Option(None, "--owner", help="Only this owner's entries.")) -> None:
    """The jobs API's audit log, oldest first: key changes, and the models its keys promoted, rolled back or
    deleted (who, when, what, why)."""
    import json
    from datetime import datetime, timezone

    from tunesmith.jobs.queue import store_for

    for e in store_for(_cfg(config)).audit_log(owner):
        at = datetime.fromtimestamp(e["at"], timezone.utc).isoformat(timespec="seconds")
        detail = f"  {json.dumps(e['detail'])}" if e["detail"] else ""
        typer.echo(f"{at}  {e['owner']}  {e['who']}  {e['action']}  {e['target']}  {e['reason']!r}{detail}")


def worker(config: Path = ConfigOpt,
           max_jobs: int = typer.Option(None, "--max-jobs", help="Exit after this many jobs (default: run forever)."),
           poll: float = typer.Option(0.5, "--poll", help="Seconds between queue polls when idle.")) -> None:
    """Run fine-tuning jobs from the queue (jobs.queue: sqlite or redis); SIGTERM requeues the running job."""
    from tunesmith.jobs.queue import work, worker_id

    cfg = _cfg(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    wid = worker_id()
    typer.echo(f"worker {wid}: queue {cfg.jobs.queue}, store {cfg.jobs.database or cfg.jobs.state_dir}")
    done = work(cfg, stop=stop, poll_s=poll, max_jobs=max_jobs, wid=wid)
    typer.echo(f"worker {wid}: stopped after {done} job(s)")
