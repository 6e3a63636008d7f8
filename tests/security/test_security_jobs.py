"""The jobs API as a hostile tenant uses it (#15 findings 1-6): each test reproduces one finding against the API
and, where the worker would act on it, against a job put straight into the store (one made before an upgrade, or
by a bug in the API): the worker checks again."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.jobs.jobs_helpers import BASE, chats_jsonl

from tunesmith.config import config_from_dict
from tunesmith.jobs.api import create_jobs_app
from tunesmith.jobs.runner import run_job
from tunesmith.jobs.spec import job_config
from tunesmith.jobs.store import JobStore, hash_key


class Listener:
    """A TCP listener on loopback that records whether anything connected (it must receive nothing)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"<connected>")
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture()
def env(tmp_path, tiny_chat_model_dir, monkeypatch):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({**BASE, "gates": ["loss <= 100", "rouge_l >= 0"]}))
    cfg = config_from_dict({
        "name": "jobs-api", "data": {"path": "unused.jsonl"},
        "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "jobs": {"state_dir": str(tmp_path / "jobs"), "lease_s": 3, "base_config": str(base),
                 "allowed_models": ["builtin:*", tiny_chat_model_dir]},
    })
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    keys = {"a": store.add_key("team-a"), "b": store.add_key("team-b")}
    queued: list[str] = []
    client = TestClient(create_jobs_app(cfg, store=store, enqueue=queued.append), raise_server_exceptions=False)
    monkeypatch.setenv("SECRET_FOR_THE_WORKER", "sk-live-do-not-send")
    return cfg, store, client, keys, queued, tiny_chat_model_dir


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def _upload(client, key, content: bytes = None, purpose="fine-tune", name="train.jsonl"):
    return client.post("/v1/files", headers=_h(key), data={"purpose": purpose},
                       files={"file": (name, content if content is not None else chats_jsonl(24))})


def _create(client, key, model, file_id, ext=None, **extra):
    body = {"model": model, "training_file": file_id, **extra}
    if ext is not None:
        body["tunesmith"] = ext
    return client.post("/v1/fine_tuning/jobs", headers=_h(key), json=body)


def _stored_job(store, owner, model, ext, tmp_path):
    """A job put straight into the store: what the worker does with it if the API's check were missing."""
    path = tmp_path / f"direct-{owner}.jsonl"
    path.write_bytes(chats_jsonl(24))
    f = store.add_file(owner, filename="train.jsonl", purpose="fine-tune", path=path, bytes=path.stat().st_size,
                       status="processed")
    return store.create_job(owner, spec={"model": model, "training_file": f["id"], "tunesmith": ext})["id"]


def test_provider_keys_and_data_never_leave_the_worker(env, tmp_path):
    """Finding 1: a job pointing training.provider at its own listener with api_key_env naming a worker secret."""
    cfg, store, client, keys, queued, model = env
    listener = Listener()
    try:
        ext = {"config": {"training": {"backend": "openai-compatible",
                                       "provider": {"base_url": f"http://127.0.0.1:{listener.port}/v1",
                                                    "api_key_env": "SECRET_FOR_THE_WORKER"}}}}
        fid = _upload(client, keys["b"]).json()["id"]
        r = _create(client, keys["b"], model, fid, ext)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tunesmith.config.training.backend", r.text
        assert queued == []
        job_id = _stored_job(store, "team-b", model, ext, tmp_path)
        assert run_job(cfg, store, job_id, worker_id="w") == "failed"
        assert store.get_job(job_id)["error"]["code"] == "not_allowed"
    finally:
        listener.close()
    assert listener.received == []  # no request, no key, no training rows


def test_remote_code_never_runs_on_the_worker(env, tmp_path):
    """Finding 2: a model dir with auto_map + evil.py, and trust_remote_code in the extension."""
    cfg, store, client, keys, _, model = env
    evil = tmp_path / "evil-model"
    evil.mkdir()
    marker = tmp_path / "pwned"
    (evil / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {
        "AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}}))
    (evil / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    fid = _upload(client, keys["b"]).json()["id"]
    ext = {"config": {"model": {"trust_remote_code": True}}}
    r = _create(client, keys["b"], str(evil), fid, ext)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tunesmith.config.model.trust_remote_code"
    r = _create(client, keys["b"], str(evil), fid)  # not a base the operator offers
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
    r = _create(client, keys["b"], model, fid, ext)  # even on an allowed base, remote code is not a tenant's call
    assert r.status_code == 400
    for m, e in ((str(evil), ext), (str(evil), None), (model, ext)):
        job_id = _stored_job(store, "team-b", m, e, tmp_path)
        assert run_job(cfg, store, job_id, worker_id="w") == "failed"
    assert not marker.exists()


def test_a_tenant_cannot_name_redirect_or_ungate_its_model(env, tmp_path):
    """Finding 3: name: <A's model>, gates: [], registry.tracking_uri elsewhere."""
    cfg, store, client, keys, _, model = env
    fid = _upload(client, keys["b"]).json()["id"]
    elsewhere = tmp_path / "elsewhere" / "mlflow.db"
    for ext, param in (({"name": "ft-team-a-model"}, "tunesmith.name"),
                       ({"config": {"name": "ft-team-a-model"}}, "tunesmith.config.name"),
                       ({"config": {"registry": {"tracking_uri": f"sqlite:///{elsewhere}"}}},
                        "tunesmith.config.registry.tracking_uri"),
                       ({"config": {"output_dir": str(tmp_path / "out")}}, "tunesmith.config.output_dir"),
                       ({"config": {"jobs": {"max_jobs": 1000}}}, "tunesmith.config.jobs.max_jobs")):
        r = _create(client, keys["b"], model, fid, ext)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (ext, r.text)
    assert not elsewhere.parent.exists()
    # gates: a job adds gates, it never removes the team's
    r = _create(client, keys["b"], model, fid, {"config": {"gates": []}})
    assert r.status_code == 200, r.text
    job = {"model": model, "training_file": fid, "tunesmith": {"config": {"gates": ["rouge_l >= 0.01"]}}}
    rules = [str(g) for g in job_config(cfg, job, store, owner="team-b").gates.rules]
    assert rules == ["loss <= 100", "rouge_l >= 0", "rouge_l >= 0.01"]
    empty = job_config(cfg, {**job, "tunesmith": {"config": {"gates": []}}}, store, owner="team-b")
    assert [str(g) for g in empty.gates.rules] == ["loss <= 100", "rouge_l >= 0"]
    # namespaces: the same base and suffix give each tenant its own model, owned by it
    a = job_config(cfg, {**job, "suffix": "x"}, store, owner="team-a")
    b = job_config(cfg, {**job, "suffix": "x"}, store, owner="team-b")
    assert a.name.startswith("ft-team-a-") and b.name.startswith("ft-team-b-") and a.name != b.name
    assert (a.registry.owner, b.registry.owner) == ("team-a", "team-b")
    assert a.registry.tracking_uri == cfg.registry.tracking_uri and a.output_dir.startswith(str(tmp_path))


def test_no_version_lands_in_a_model_another_owner_registered(tmp_path, tiny_model_dir):
    """Finding 3, at the registry: even a name collision (owner 'team' + base 'a-x' vs owner 'team-a' + 'x')
    cannot add a version to the other owner's model."""
    from tunesmith.config import RegistryConfig
    from tunesmith.registry import RegistryError, check_owner, log_run, register_version

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = config_from_dict({"name": "ft-team-a-x", "data": {"path": "unused.csv"},
                            "registry": {"tracking_uri": uri, "owner": "team-a"}, "output_dir": str(tmp_path)})
    run_id = log_run(cfg, run_dir=tmp_path, metrics={"accuracy": 1.0}, model_dir=Path(tiny_model_dir))
    assert register_version("ft-team-a-x", run_id=run_id, registry=cfg.registry).version == 1
    other = RegistryConfig(tracking_uri=uri, owner="team")
    with pytest.raises(RegistryError, match="another owner"):
        check_owner("ft-team-a-x", "team", registry=other)
    with pytest.raises(RegistryError, match="another owner"):
        register_version("ft-team-a-x", run_id=run_id, registry=other)
    check_owner("ft-team-a-x", "team-a", registry=cfg.registry)  # its owner may
    check_owner("ft-team-a-x", None, registry=RegistryConfig(tracking_uri=uri))  # and so may the operator


def test_a_tenant_cannot_learn_from_another_tenants_model(env):
    """Finding 4: method.distill.teacher (or model) naming A's fine-tuned model."""
    cfg, store, client, keys, _, model = env
    fid = _upload(client, keys["b"]).json()["id"]
    ext = {"config": {"method": {"kind": "distill", "distill": {"teacher": "ft-team-a-model:1"}}}}
    r = _create(client, keys["b"], model, fid, ext)
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("tunesmith.config.method")
    r = _create(client, keys["b"], "ft-team-a-model:1", fid)
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_found"
    # an operator who lets tenants distil still confines the teacher to allowed bases and the tenant's own models
    cfg.jobs.tenant_keys = [*cfg.jobs.tenant_keys, "method.kind", "method.distill.teacher"]
    from tunesmith.jobs.tenancy import TenantError

    with pytest.raises(TenantError, match="teacher"):
        job_config(cfg, {"model": model, "training_file": fid, "tunesmith": ext}, store, owner="team-b")


def test_errors_leak_no_file_contents_paths_or_tracebacks(env, tmp_path, monkeypatch):
    """Finding 5: evaluation.regression naming a secret file; model paths probing existence; crash messages."""
    cfg, store, client, keys, _, model = env
    secret = tmp_path / "secret.env"
    secret.write_text("# keys\nAPI: KEY: sk-live-123456\n")
    fid = _upload(client, keys["b"]).json()["id"]
    r = _create(client, keys["b"], model, fid, {"config": {"evaluation": {"regression": str(secret)}}})
    assert r.status_code == 400 and "sk-live" not in r.text
    job_id = _stored_job(store, "team-b", model, {"config": {"evaluation": {"regression": str(secret)}}}, tmp_path)
    run_job(cfg, store, job_id, worker_id="w")
    assert "sk-live" not in json.dumps(store.get_job(job_id))
    # existence: a folder that exists and one that does not answer the same
    answers = {p: _create(client, keys["b"], p, fid).json()["error"]["message"].replace(p, "P")
               for p in (str(tmp_path), str(tmp_path / "nope"))}
    assert len(set(answers.values())) == 1
    # a crash in training: the tenant gets the kind of failure, never a traceback or a server path
    import tunesmith.pipeline as pipeline

    def crash(*_a, **_k):
        raise RuntimeError(f"CUDA out of memory reading {tmp_path}/weights.bin\n{secret.read_text()}")
    monkeypatch.setattr(pipeline, "run", crash)
    job_id = _stored_job(store, "team-b", model, None, tmp_path)
    assert run_job(cfg, store, job_id, worker_id="w") == "failed"
    error = store.get_job(job_id)["error"]
    assert error["code"] == "training_error" and "operator" in error["message"]
    for leaked in ("Traceback", str(tmp_path), "sk-live", ".py"):
        assert leaked not in json.dumps(store.get_job(job_id)), leaked

    def refuse(*_a, **_k):
        raise ValueError(f"the data in {tmp_path}/x.jsonl has one class\n{secret.read_text()}")
    monkeypatch.setattr(pipeline, "run", refuse)
    job_id = _stored_job(store, "team-b", model, None, tmp_path)
    run_job(cfg, store, job_id, worker_id="w")
    message = store.get_job(job_id)["error"]["message"]
    assert "has one class" in message and str(tmp_path) not in message and "sk-live" not in message


def test_uploads_never_500_and_foreign_ids_look_unknown(env):
    """Finding 6: deep nesting, huge integers, non-UTF-8 content, the 413 size, paging after a foreign id."""
    cfg, store, client, keys, _, model = env
    deep = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    r = _upload(client, keys["a"], deep)
    assert r.status_code == 400 and "train.jsonl:1" in r.json()["error"]["message"], r.text
    big = b'{"messages": [{"role": "user", "content": "hi", "n": ' + b"9" * 5000 + b'}]}\n'
    r = _upload(client, keys["a"], big)
    assert r.status_code == 400 and "train.jsonl:1" in r.json()["error"]["message"], r.text
    raw = bytes(range(256))
    f = _upload(client, keys["a"], raw, purpose="batch", name="blob.bin").json()
    got = client.get(f"/v1/files/{f['id']}/content", headers=_h(keys["a"]))
    assert got.status_code == 200 and got.content == raw
    small = store.add_key("team-c", max_file_bytes=1000)
    r = _upload(client, small, b"x" * 5000)
    assert r.status_code == 413 and "5000 bytes" in r.json()["error"]["message"], r.text
    # a cursor naming another tenant's job answers like one naming no job at all
    fid = _upload(client, keys["a"]).json()["id"]
    a_job = _create(client, keys["a"], model, fid).json()["id"]
    fb = _upload(client, keys["b"]).json()["id"]
    for _ in range(2):
        assert _create(client, keys["b"], model, fb).status_code == 200
    foreign = client.get(f"/v1/fine_tuning/jobs?after={a_job}&limit=1", headers=_h(keys["b"])).json()
    unknown = client.get("/v1/fine_tuning/jobs?after=ftjob-unknown&limit=1", headers=_h(keys["b"])).json()
    assert foreign == unknown and foreign["has_more"] is True


def test_the_operator_cannot_hand_tenants_the_keys_that_decide_where_weights_go():
    """jobs.tenant_keys is checked when the API's config loads: a typo or a never-a-tenant's key is a config error."""
    from tunesmith.config import ConfigError

    def load(keys):
        return config_from_dict({"name": "api", "data": {"path": "x.jsonl"}, "jobs": {"tenant_keys": keys}})

    for keys, says in ((["registry"], "never a tenant's"), (["data.path"], "never a tenant's"),
                       (["training.provider.base_url"], "never a tenant's"),
                       (["training.epoch"], "did you mean 'training.epochs'")):
        with pytest.raises(ConfigError, match=says):
            load(keys)
    assert load(["training", "method.lora"]).jobs.tenant_keys == ["training", "method.lora"]
    # a broad key still leaves out what is never a tenant's
    from tunesmith.jobs.tenancy import TenantError, check_extension

    assert check_extension({"config": {"training": {"epochs": 1}}}, ["training"]) == {"training": {"epochs": 1}}
    with pytest.raises(TenantError, match="training.backend"):
        check_extension({"config": {"training": {"backend": "openai-compatible"}}}, ["training"])
    with pytest.raises(TenantError, match="model.init_from"):  # another team's model dir as the starting weights
        check_extension({"config": {"model": {"init_from": "/srv/mlartifacts/team-a/model"}}}, ["model"])


def test_a_read_key_reads_and_is_refused_every_change_and_old_keys_keep_training(env, tmp_path):
    import sqlite3

    cfg, store, client, keys, queued, model = env
    reader = store.add_key("team-a", role="read")
    file_id = _upload(client, keys["a"]).json()["id"]  # team-a's train key uploads
    assert client.get("/v1/files", headers=_h(reader)).status_code == 200  # the read key sees team-a's files
    assert client.get("/v1/fine_tuning/jobs", headers=_h(reader)).status_code == 200
    for refused in (_upload(client, reader), _create(client, reader, model, file_id),
                    client.delete(f"/v1/files/{file_id}", headers=_h(reader))):
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_role", refused.text
    assert not queued and client.get(f"/v1/files/{file_id}", headers=_h(keys["a"])).status_code == 200
    with pytest.raises(ValueError, match="role: one of read, train, promote, admin"):
        store.add_key("team-a", role="root")
    # a key table from before roles: the column is added, and its keys keep the train role they always had
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(old / "jobs.db") as db:
        db.execute("CREATE TABLE api_keys (key_hash VARCHAR(64) PRIMARY KEY, owner VARCHAR(200) NOT NULL, "
                   "max_jobs INTEGER, max_file_bytes INTEGER, created_at INTEGER NOT NULL)")
        db.execute("INSERT INTO api_keys VALUES (?, 'legacy', NULL, NULL, 0)", (hash_key("ts-legacy"),))
    info = JobStore(state_dir=old).key_info("ts-legacy")
    assert info.owner == "legacy" and info.role == "train" and info.may("train") and not info.may("promote")


def test_promote_rollback_delete_and_key_changes_need_their_role_and_are_audited(env, tmp_path, tiny_model_dir):
    """Item 7 of #20 over HTTP: promote/rollback need role promote, delete and key changes need admin; each change
    names who and why in the jobs audit log (and the model's registry trail); another owner's model is a 404."""
    from tunesmith.registry import audit_log, get_version, log_run, register_version

    cfg, store, client, keys, _, _ = env
    run_cfg = config_from_dict({"name": "ft-team-a-x", "data": {"path": "unused.csv"}, "output_dir": str(tmp_path),
                                "registry": {"tracking_uri": cfg.registry.tracking_uri, "owner": "team-a"}})
    run_id = log_run(run_cfg, run_dir=tmp_path, metrics={"accuracy": 1.0}, model_dir=Path(tiny_model_dir))
    for _ in range(3):
        register_version("ft-team-a-x", run_id=run_id, registry=run_cfg.registry)
    for v in (1, 2, 3):
        job = store.create_job("team-a", spec={"model": "builtin:smollm2-135m-instruct", "training_file": "file-x"})
        store.finish(job["id"], None, status="succeeded", fine_tuned_model=f"ft-team-a-x:{v}")
    promoter, admin = store.add_key("team-a", role="promote"), store.add_key("team-a", role="admin")
    why = {"reason": "beats v1 on refunds"}

    # roles: a train key may not promote; a promote key may not delete or manage keys
    r = client.post("/v1/models/ft-team-a-x:1/promote", headers=_h(keys["a"]), json=why)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    for refused in (client.delete("/v1/models/ft-team-a-x:1?reason=x", headers=_h(promoter)),
                    client.get("/v1/api_keys", headers=_h(promoter)),
                    client.post("/v1/api_keys", headers=_h(promoter), json={"role": "admin", "reason": "me"})):
        assert refused.status_code == 403, refused.text
    # a reason is required; another owner's model looks unknown even to an admin of theirs
    assert client.post("/v1/models/ft-team-a-x:1/promote", headers=_h(promoter), json={}).status_code == 400
    b_admin = store.add_key("team-b", role="admin", reason="team-b's operator")
    assert client.post("/v1/models/ft-team-a-x:1/promote", headers=_h(b_admin), json=why).status_code == 404

    assert client.post("/v1/models/ft-team-a-x:1/promote", headers=_h(promoter), json=why).status_code == 200
    assert client.post("/v1/models/ft-team-a-x:2/promote", headers=_h(promoter), json=why).status_code == 200
    r = client.post("/v1/models/ft-team-a-x:2/rollback", headers=_h(promoter), json={"reason": "refunds regressed"})
    assert r.status_code == 200 and r.json()["id"] == "ft-team-a-x:1"
    # the champion cannot be deleted (409 with the way out); another version can, with a reason
    r = client.delete("/v1/models/ft-team-a-x:1?reason=old", headers=_h(admin))
    assert r.status_code == 409 and "champion" in r.json()["error"]["message"]
    assert client.delete("/v1/models/ft-team-a-x:3", headers=_h(admin)).status_code == 400  # no reason
    r = client.delete("/v1/models/ft-team-a-x:3?reason=trained%20on%20a%20bad%20export", headers=_h(admin))
    assert r.status_code == 200 and r.json() == {"id": "ft-team-a-x:3", "object": "model", "deleted": True}
    listed = [m["id"] for m in client.get("/v1/models", headers=_h(keys["a"])).json()["data"]]
    assert "ft-team-a-x:3" not in listed and "ft-team-a-x:1" in listed
    assert "tunesmith.deleted" in get_version("ft-team-a-x", 3, registry=cfg.registry).tags
    # keys: an admin lists (ids, never keys), creates and revokes its owner's keys; a revoked key stops working
    r = client.post("/v1/api_keys", headers=_h(admin), json={"role": "read", "reason": "the dashboard"})
    assert r.status_code == 200 and r.json()["role"] == "read"
    new_key, new_id = r.json()["key"], r.json()["id"]
    assert client.get("/v1/files", headers=_h(new_key)).status_code == 200
    listed = client.get("/v1/api_keys", headers=_h(admin)).json()["data"]
    assert new_id in {k["id"] for k in listed} and {k["owner"] for k in listed} == {"team-a"}
    assert all("key" not in k for k in listed)
    b_key = store.list_keys("team-b")[0].key_id
    assert client.post(f"/v1/api_keys/{b_key}/revoke", headers=_h(admin), json=why).status_code == 404
    assert client.post(f"/v1/api_keys/{new_id}/revoke", headers=_h(admin),
                       json={"reason": "dashboard retired"}).status_code == 200
    assert client.get("/v1/files", headers=_h(new_key)).status_code == 401

    trail = client.get("/v1/audit", headers=_h(admin)).json()["data"]
    actions = [(e["action"], e["target"], e["reason"]) for e in trail if e["action"].startswith("model_")]
    assert actions == [("model_promote", "ft-team-a-x:1", why["reason"]), ("model_promote", "ft-team-a-x:2",
                       why["reason"]), ("model_rollback", "ft-team-a-x:1", "refunds regressed"),
                       ("model_delete", "ft-team-a-x:3", "trained on a bad export")]
    keyed = [(e["action"], e["target"], e["reason"]) for e in trail if e["action"].startswith("key_")]
    assert ("key_add", new_id, "the dashboard") in keyed and ("key_revoke", new_id, "dashboard retired") in keyed
    assert all(e["who"].startswith("team-a/key_") for e in trail if e["reason"] in ("the dashboard",
                                                                                   "refunds regressed"))
    assert all(e["owner"] == "team-a" for e in trail)  # team-b's key add is not in team-a's log
    registry_trail = [(e["action"], e["version"]) for e in audit_log("ft-team-a-x", registry=cfg.registry)]
    assert registry_trail == [("promote", 1), ("promote", 2), ("rollback", 1), ("delete", 3)]
