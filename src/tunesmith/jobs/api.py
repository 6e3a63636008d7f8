"""The OpenAI-compatible fine-tuning API: files, jobs, events, checkpoints, and chat with the fine-tuned models.

    app = create_jobs_app(cfg)            # `tunesmith api -c CONFIG` serves it with uvicorn
    client = openai.OpenAI(base_url="http://host:8000/v1", api_key="ts-...")
    f = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="builtin:smollm2-135m-instruct", training_file=f.id)

Every request carries `Authorization: Bearer <key>` (keys from `tunesmith api keys add`, stored hashed); a key sees
only its own files and jobs (another key's are 404). Errors have the provider's shape
`{"error": {"message", "type", "param", "code"}}`, with the file's line number for a bad upload; no request gets a
500 for bad input. A job is created `queued` and handed to the queue (huey); `tunesmith worker` runs it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tunesmith.config import Config, ConfigError
from tunesmith.jobs.files import UploadError, check_upload, status_details
from tunesmith.jobs.store import JobStore, KeyInfo, new_id


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 type: str = "invalid_request_error"):
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


class JobRequest(BaseModel):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = None
    method: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Any] | None = None
    tunesmith: dict[str, Any] | None = None  # extension: {"name": ..., "config": {...tunesmith YAML as a dict}}


class ChatRequest(BaseModel):
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None


class Reason(BaseModel):
    reason: str = Field(..., min_length=1, max_length=1000, description="Why: kept in the audit log.")


class KeyRequest(BaseModel):
    role: str = Field("train", description="read, train, promote or admin")
    reason: str = Field(..., min_length=1, max_length=1000)
    max_jobs: int | None = Field(None, ge=1)
    max_file_bytes: int | None = Field(None, ge=1)


def _page(data: list, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


class LoadedModels:
    """Fine-tuned models loaded on demand for chat, the most recently used few kept in memory."""

    def __init__(self, cfg: Config, keep: int = 2):
        self.cfg, self.keep, self.lock = cfg, keep, threading.Lock()
        self.models: OrderedDict[str, Any] = OrderedDict()

    def get(self, ref: str):
        from tunesmith.registry import model_dir_for
        from tunesmith.serving.models import load_served

        with self.lock:
            if ref in self.models:
                self.models.move_to_end(ref)
                return self.models[ref]
            name, _, version = ref.rpartition(":")
            path = model_dir_for(name, version, registry=self.cfg.registry)
            if path is None:
                raise ApiError(404, f"The model '{ref}' does not exist", "model_not_found", "model")
            served = load_served(Path(path), name=name, version=int(version), options=self.cfg.serving.inference)
            self.models[ref] = served
            while len(self.models) > self.keep:
                self.models.popitem(last=False)
            return served


def jobs_router(cfg: Config, *, store: JobStore | None = None, enqueue: Callable[[str], None] | None = None,
                chat: bool = True) -> APIRouter:
    """The routes; `enqueue(job_id)` defaults to the configured huey queue. `chat=False` leaves /v1/chat and
    /v1/models to a serving app that has its own."""
    store = store or JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    if enqueue is None:
        from tunesmith.jobs.queue import enqueue as queue_enqueue

        def enqueue(job_id: str) -> None:
            queue_enqueue(cfg, job_id)
    uploads = Path(cfg.jobs.state_dir) / "files"
    uploads.mkdir(parents=True, exist_ok=True)
    models = LoadedModels(cfg)
    router = APIRouter()

    def key(request: Request) -> KeyInfo:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        info = store.key_info(token) if token else None
        if info is None:
            raise ApiError(401, "Incorrect API key provided. Create one with `tunesmith api keys add OWNER`.",
                           "invalid_api_key", type="invalid_request_error")
        return info

    def needs(role: str, what: str) -> Callable[[KeyInfo], KeyInfo]:
        def check(k: KeyInfo = Depends(key)) -> KeyInfo:
            if not k.may(role):
                raise ApiError(403, f"this API key's role is {k.role!r}: {what} needs role {role}; ask the operator "
                               f"for such a key (`tunesmith api keys add OWNER --role {role} --reason ...`)",
                               "insufficient_role", type="permission_error")
            return k
        return check

    # train: upload, delete, start or cancel; promote: move a model's champion; admin: delete models, manage keys
    trainer = needs("train", "uploading, deleting files, starting or cancelling jobs")
    promoter = needs("promote", "promoting or rolling back a model")
    admin = needs("admin", "deleting a model or managing keys")

    def who(k: KeyInfo) -> str:
        return f"{k.owner}/{k.key_id}"

    def owned(ref: str, k: KeyInfo) -> tuple[str, int]:
        """`NAME:VERSION` of one of this key's fine-tuned models, or 404 (another owner's is not found either)."""
        if ref not in _owned_models(store, k.owner):
            raise ApiError(404, f"The model '{ref}' does not exist or is not one of this key's fine-tuned models",
                           "model_not_found", "model")
        name, _, version = ref.rpartition(":")
        return name, int(version)

    def registry_call(fn, *args, **kwargs):
        from tunesmith.registry import RegistryError

        try:
            return fn(*args, registry=cfg.registry, **kwargs)
        except RegistryError as exc:
            raise ApiError(409, " ".join(str(exc).split()), "conflict", "model") from None

    @router.post("/v1/models/{model}/promote")
    def promote_model(model: str, body: Reason, k: KeyInfo = Depends(promoter)):
        """Make this fine-tuned version its model's champion (audited, with the reason)."""
        from tunesmith import registry

        name, version = owned(model, k)
        registry_call(registry.promote, name, version, who=who(k), reason=body.reason)
        store.record_audit(k.owner, who=who(k), action="model_promote", target=model, reason=body.reason)
        return {**_model_object(model, k.owner), "champion": True}

    @router.post("/v1/models/{model}/rollback")
    def rollback_model(model: str, body: Reason, k: KeyInfo = Depends(promoter)):
        """Move the champion of this fine-tuned model's name back to the one before (audited)."""
        from tunesmith import registry

        name, _ = owned(model, k)
        restored = registry_call(registry.rollback, name, who=who(k), reason=body.reason)
        ref = f"{name}:{restored.version}"
        store.record_audit(k.owner, who=who(k), action="model_rollback", target=ref, reason=body.reason,
                           detail={"from": model})
        return {**_model_object(ref, k.owner), "champion": True}

    @router.delete("/v1/models/{model}")
    def delete_model(model: str, reason: str = "", k: KeyInfo = Depends(admin)):
        """OpenAI's delete of a fine-tuned model; `?reason=` is required (audited). The champion is refused (409)."""
        if not reason.strip():
            raise ApiError(400, "deleting a model needs a reason: DELETE /v1/models/{model}?reason=...", "missing_reason",
                           "reason")
        from tunesmith import registry

        name, version = owned(model, k)
        registry_call(registry.delete_version, name, version, who=who(k), reason=reason[:1000])
        store.record_audit(k.owner, who=who(k), action="model_delete", target=model, reason=reason[:1000])
        return {"id": model, "object": "model", "deleted": True}

    @router.get("/v1/api_keys")
    def list_keys(k: KeyInfo = Depends(admin)):
        """This owner's keys (public ids and roles, never the keys)."""
        return {"object": "list", "data": [_key_object(i) for i in store.list_keys(k.owner)]}

    @router.post("/v1/api_keys")
    def create_key(body: KeyRequest, k: KeyInfo = Depends(admin)):
        """A new key for this key's owner; the key is in this response only (audited)."""
        from tunesmith.jobs.store import ROLES

        if body.role not in ROLES:
            raise ApiError(400, f"role: one of {', '.join(ROLES)}, not {body.role!r}", "invalid_role", "role")
        new = store.add_key(k.owner, role=body.role, max_jobs=body.max_jobs, max_file_bytes=body.max_file_bytes,
                            who=who(k), reason=body.reason)
        return {**_key_object(store.key_info(new)), "key": new}

    @router.post("/v1/api_keys/{key_id}/revoke")
    def revoke_key(key_id: str, body: Reason, k: KeyInfo = Depends(admin)):
        """Revoke one of this owner's keys (audited); the key stops working at once."""
        info = store.revoke_key(key_id, owner=k.owner, who=who(k), reason=body.reason)
        if info is None:
            raise ApiError(404, f"No such API key: {key_id}", "not_found", "key_id")
        return {**_key_object(info), "revoked": True}

    @router.get("/v1/audit")
    def audit_log(k: KeyInfo = Depends(admin)):
        """This owner's audit log, oldest first: key changes and model promotes, rollbacks and deletes."""
        return {"object": "list", "data": store.audit_log(k.owner)}

    @router.post("/v1/files")
    async def upload(file: UploadFile = File(...), purpose: str = Form(...), k: KeyInfo = Depends(trainer)):
        limit = k.max_file_bytes or cfg.jobs.max_file_bytes
        data = await file.read(limit + 1)
        name = Path(file.filename or "upload.jsonl").name
        try:
            info = check_upload(data, filename=name, purpose=purpose, max_bytes=limit, size=file.size)
        except UploadError as exc:
            raise ApiError(exc.status, exc.message, exc.code, exc.param) from None
        file_id = new_id("file")
        path = uploads / f"{file_id}.jsonl"
        from tunesmith.io import atomic_write_bytes

        atomic_write_bytes(path, data)
        return store.add_file(k.owner, filename=name, purpose=purpose, path=path, bytes=len(data),
                              status="processed", status_details=status_details(info), tunesmith=info,
                              file_id=file_id)

    @router.get("/v1/files")
    def list_files(purpose: str | None = None, k: KeyInfo = Depends(key)):
        return _page(store.list_files(k.owner, purpose), False)

    @router.get("/v1/files/{file_id}")
    def get_file(file_id: str, k: KeyInfo = Depends(key)):
        return _own(store.get_file(k.owner, file_id), "file", file_id)

    @router.get("/v1/files/{file_id}/content")
    def file_content(file_id: str, k: KeyInfo = Depends(key)):
        _own(store.get_file(k.owner, file_id), "file", file_id)
        path = store.file_path(file_id)
        if path is None or not path.is_file():
            raise ApiError(404, f"No such file: {file_id}", "not_found", "id")
        return Response(path.read_bytes(), media_type="application/octet-stream")  # the bytes as uploaded

    @router.delete("/v1/files/{file_id}")
    def delete_file(file_id: str, k: KeyInfo = Depends(trainer)):
        _own(store.get_file(k.owner, file_id), "file", file_id)
        store.delete_file(k.owner, file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.post("/v1/fine_tuning/jobs")
    def create_job(body: JobRequest, k: KeyInfo = Depends(trainer)):
        limit = k.max_jobs or cfg.jobs.max_jobs
        if store.active_jobs(k.owner) >= limit:
            raise ApiError(429, f"this key already has {limit} unfinished jobs (its quota); wait for one to finish "
                           "or cancel one", "quota_exceeded", type="rate_limit_error")
        for param in ("training_file", "validation_file"):
            fid = getattr(body, param)
            if fid is None:
                continue
            f = store.get_file(k.owner, fid)
            if f is None:
                raise ApiError(400, f"{param}: no file {fid!r} for this key", "invalid_file", param)
            if f["purpose"] != "fine-tune":
                raise ApiError(400, f"{param}: file {fid} has purpose {f['purpose']!r}; upload it with purpose "
                               "'fine-tune'", "invalid_file", param)
        if (body.method or {}).get("type", "supervised") != "supervised":
            raise ApiError(400, "method.type: only 'supervised' fine-tuning runs here", "unsupported_method", "method")
        spec = body.model_dump(exclude_none=True)
        _check_config(cfg, spec, store, k.owner)
        job = store.create_job(k.owner, spec=spec)
        enqueue(job["id"])
        return job

    @router.get("/v1/fine_tuning/jobs")
    def list_jobs(after: str | None = None, limit: int = 20, k: KeyInfo = Depends(key)):
        data, more = store.list_jobs(k.owner, after=after, limit=max(1, min(limit, 100)))
        return _page(data, more)

    @router.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: str, k: KeyInfo = Depends(key)):
        return _own(store.get_job(job_id, k.owner), "fine-tuning job", job_id)

    @router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, k: KeyInfo = Depends(trainer)):
        job = _own(store.get_job(job_id, k.owner), "fine-tuning job", job_id)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            raise ApiError(400, f"job {job_id} is already {job['status']}", "invalid_state")
        return store.request_cancel(job_id, k.owner)

    @router.get("/v1/fine_tuning/jobs/{job_id}/events")
    def job_events(job_id: str, after: str | None = None, limit: int = 20, k: KeyInfo = Depends(key)):
        _own(store.get_job(job_id, k.owner), "fine-tuning job", job_id)
        return _page(*store.list_events(job_id, after=after, limit=max(1, min(limit, 1000))))

    @router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def job_checkpoints(job_id: str, after: str | None = None, limit: int = 10, k: KeyInfo = Depends(key)):
        _own(store.get_job(job_id, k.owner), "fine-tuning job", job_id)
        return _page(*store.list_checkpoints(job_id, after=after, limit=max(1, min(limit, 100))))

    if chat:
        @router.get("/v1/models")
        def list_models(k: KeyInfo = Depends(key)):
            return {"object": "list", "data": [_model_object(m, k.owner) for m in _owned_models(store, k.owner)]}

        @router.post("/v1/chat/completions")
        def chat_completions(body: ChatRequest, k: KeyInfo = Depends(key)):
            from tunesmith.families.causal_lm.serve import GenParams, chat_prompt, generate

            if body.model not in _owned_models(store, k.owner):
                raise ApiError(404, f"The model '{body.model}' does not exist or is not one of this key's "
                               "fine-tuned models", "model_not_found", "model")
            served = models.get(body.model)
            stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
            params = GenParams(max_tokens=body.max_completion_tokens or body.max_tokens or 64,
                               temperature=body.temperature, top_p=body.top_p, stop=stop)
            from tunesmith.serving.schemas import check_text

            for i, m in enumerate(body.messages):
                try:
                    check_text(m["content"]) if isinstance(m.get("content"), str) else None
                except ValueError as exc:
                    raise ApiError(400, f"messages.{i}.content: {exc}", "invalid_request", "messages") from None
            try:
                prompt = chat_prompt(served, body.messages)
            except ValueError as exc:
                raise ApiError(400, str(exc), "invalid_request", "messages") from None
            (gen,) = generate(served, [(prompt, params)])
            return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                    "model": body.model,
                    "choices": [{"index": 0, "finish_reason": gen.finish_reason,
                                 "message": {"role": "assistant", "content": gen.text}}],
                    "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                              "total_tokens": gen.prompt_tokens + gen.completion_tokens}}
    return router


def install_error_handlers(app: FastAPI) -> None:
    """ApiError and request-validation errors in the provider's error shape (4xx, never a 500 for bad input)."""

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return ApiError(400, f"{param or 'request'}: {first.get('msg', 'invalid request')}", "invalid_request",
                        param).response()


def mount_jobs(app: FastAPI, cfg: Config, *, store: JobStore | None = None) -> None:
    """`tunesmith serve --jobs`: the files and jobs routes on a serving app, which keeps its own chat and models."""
    app.include_router(jobs_router(cfg, store=store, chat=False))
    app.add_exception_handler(ApiError, lambda _request, exc: exc.response())


def create_jobs_app(cfg: Config, *, store: JobStore | None = None,
                    enqueue: Callable[[str], None] | None = None) -> FastAPI:
    app = FastAPI(title="tunesmith fine-tuning API")
    install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process is up (what Kubernetes' probes ask; needs no key)."""
        return {"status": "ok"}

    app.include_router(jobs_router(cfg, store=store, enqueue=enqueue))
    return app


def _own(obj: dict | None, what: str, oid: str) -> dict:
    if obj is None:
        raise ApiError(404, f"No such {what}: {oid}", "not_found", "id")
    return obj


def _owned_models(store: JobStore, owner: str) -> list[str]:
    from tunesmith.jobs.spec import owned_models

    return owned_models(store, owner)


def _key_object(info: KeyInfo) -> dict:
    return {"id": info.key_id, "object": "api_key", "owner": info.owner, "role": info.role,
            "max_jobs": info.max_jobs, "max_file_bytes": info.max_file_bytes}


def _model_object(ref: str, owner: str) -> dict:
    return {"id": ref, "object": "model", "created": int(time.time()), "owned_by": owner}


def _check_config(cfg: Config, spec: dict, store: JobStore, owner: str) -> None:
    """Build the job's config now, so a key the tenant may not set, a model it may not use or a bad
    hyperparameter is a 400 at create, not a failed job."""
    from tunesmith.jobs.spec import job_config
    from tunesmith.jobs.tenancy import TenantError, tenant_message

    job = {**spec, "user_provided_suffix": spec.get("suffix"), "tunesmith": spec.get("tunesmith")}
    try:
        job_config(cfg, job, store, owner=owner)
    except TenantError as exc:
        raise ApiError(400, exc.message, exc.code, exc.param) from None
    except ConfigError as exc:
        message = tenant_message(str(exc), {str(Path(cfg.jobs.state_dir).resolve()): "<jobs>"})
        raise ApiError(400, f"the job's tunesmith config is invalid: {message}", "invalid_config",
                       "tunesmith") from None
