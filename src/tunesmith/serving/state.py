"""The live state of one server: the loaded champion (and challenger), their batchers, routing and rollback.

    state = ServingState("sentiment", settings=cfg.serving, store=open_store(cfg.registry))
    await state.start()            # loads champion (+ challenger), starts batchers and the registry watcher
    answer = await state.predict("/v1/classify", "great film", caller_key="acme")
    await state.stop()             # drains every queued request

Registry aliases are polled every `poll_interval_s`: `tunesmith models promote/rollback` (or a new
challenger) changes what this server answers with, without a restart. An automatic rollback removes the
`challenger` alias and tags that version `tunesmith.rollout=rolled_back` (with the reason), so neither
this server nor a restarted one routes to it again; the champion alias is never touched by a rollback.
With `serving.shared_state`, the replicas of a model judge one shared window and the first to see a breach
decides the rollback for all of them (serving/shared.py); the others drop the challenger within a poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from tunesmith.serving.batching import Batcher, QueueFull
from tunesmith.serving.filters import apply_filters
from tunesmith.serving.metrics import ServerMetrics, create_metrics
from tunesmith.serving.models import Served, load_served
from tunesmith.serving.router import Role, SloWindow, agree, pick_role
from tunesmith.serving.shared import Verdict, shared_rollout

_log = logging.getLogger("tunesmith.serving")

ROLLOUT_TAG = "tunesmith.rollout"
ROLLED_BACK = "rolled_back"


class RouteNotServed(Exception):
    """The loaded model's task does not answer this route (400 with the routes it does answer)."""


class NoModel(Exception):
    """No champion is registered (or it cannot be loaded) yet; /readyz says not ready."""


class ModelNotFound(LookupError):
    """A request's `model` names a model, version or alias this server has not loaded (404 model_not_found)."""


@dataclass
class Slot:
    served: Served
    batcher: Batcher


@dataclass
class Answer:
    result: Any
    served: Served
    role: Role
    latency_s: float
    logged: Any = None  # what the prediction log keeps when it differs from `result` (an abstention keeps the guess)
    filters: tuple[str, ...] = ()  # serving.filters actions taken on it ("confidence_floor:abstained", ...)


def batch_fn(served: Served):
    """The batch function of a model: its family's `predict` (a model serves one family)."""
    predict = served.family.predict
    return lambda items: predict(served, items)


def routes_of(served: Served) -> tuple[str, ...]:
    return tuple(route.path for route in served.family.routes)


class ServingState:
    """Champion + challenger slots of one registered model and the rollout rules between them."""

    def __init__(self, name: str, *, settings, store=None, prediction_log=None, metrics: ServerMetrics | None = None,
                 prices=None):
        self.name = name
        self.settings = settings
        self.prices = prices  # the config's cost: section (CostConfig) or None: busy time metered, not priced
        self.usage: dict[int, list[float]] = {}  # version -> [items, core-seconds, GPU-seconds] since it loaded
        self.store = store
        self.plog = prediction_log
        self.metrics = metrics or create_metrics()
        self.slots: dict[Role, Slot] = {}
        self.window = SloWindow(settings.rollback.window)  # this server's own outcomes (the judge without a store)
        self.shared = shared_rollout(settings, on_error=self.metrics.shared_state_errors.inc)  # None: not shared
        self.events: list[dict] = []  # rollbacks and reloads, newest last (also logged)
        self._retired: set[int] = set()  # challenger versions rolled back by this server
        self._watcher: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._reload_lock = asyncio.Lock()
        self.streams = asyncio.Semaphore(settings.max_queue)

    # --- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.sync_with_registry()
        if Role.CHAMPION not in self.slots:
            raise NoModel(f"{self.name} has no champion to serve; promote a version: "
                          f"`tunesmith models promote {self.name} --reason ...`")
        self._watcher = asyncio.create_task(self._watch(), name="registry-watcher")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)  # shadows and rollbacks finish
        for role in list(self.slots):
            slot = self.slots.pop(role)
            await slot.batcher.stop()
            if slot.served.upstream is not None:
                await slot.served.upstream.aclose()
        if self.plog is not None:
            await asyncio.to_thread(self.plog.close)
        if self.shared is not None:
            await self.shared.close()

    async def install(self, role: Role, served: Served) -> None:
        """Serve `served` as `role`; the slot it replaces finishes its queued requests in the background."""
        batcher = Batcher(batch_fn(served), max_batch_size=self.settings.max_batch_size,
                          max_wait_ms=self.settings.max_wait_ms, max_queue=self.settings.max_queue,
                          on_batch=self._on_batch(served), on_done=self._on_done(served), name=served.tag,
                          workers=served.batch_workers or self.settings.workers)
        await batcher.start()
        old = self.slots.get(role)
        self.slots[role] = Slot(served, batcher)
        self.metrics.loaded.labels(served.name, str(served.version), role.value).set(1)
        self.metrics.backend.labels(served.name, str(served.version), served.backend).set(1)
        if role is Role.CHALLENGER:
            self.window.clear()
            for kind in ROLLBACK_KINDS:  # zero from the start: "no rollback" is a series at 0, not a missing one
                self.metrics.rollbacks.labels(served.name, str(served.version), kind)
        self._update_canary_gauge()
        if old is not None:
            await self._retire_slot(role, old)
        self._event("loaded", role=role.value, version=served.version)

    async def remove(self, role: Role) -> None:
        slot = self.slots.pop(role, None)
        if slot is not None:
            self._update_canary_gauge()
            await self._retire_slot(role, slot)

    async def _retire_slot(self, role: Role, slot: Slot) -> None:
        if not any(s.served is slot.served for s in self.slots.values()):
            self.metrics.loaded.labels(slot.served.name, str(slot.served.version), role.value).set(0)
            if slot.served.upstream is not None:
                self._spawn(slot.served.upstream.retire())  # its answers in flight finish first
        self._spawn(slot.batcher.stop())

    # --- requests --------------------------------------------------------------------------------------

    def champion(self) -> Served:
        slot = self.slots.get(Role.CHAMPION)
        if slot is None:
            raise NoModel(f"{self.name} has no champion loaded")
        return slot.served

    def check_route(self, route: str) -> Served:
        served = self.champion()
        if route not in routes_of(served):
            answers = ", ".join(routes_of(served))
            raise RouteNotServed(f"model {served.tag} is a {served.task} model and does not serve {route}; "
                                 f"it answers {answers}")
        return served

    def resolve_model(self, requested: str | None) -> int | None:
        """The loaded version a request's `model` field pins (`NAME:VERSION`, `NAME@champion|challenger`), or None
        for `NAME` / no model: the routed default (champion, or the challenger for the canary share)."""
        if not requested:
            return None
        name, sep, which = _split_model(requested)
        if name != self.name:
            raise ModelNotFound(f"model {requested!r} does not exist here; this server serves {self.name!r} "
                                f"(GET /v1/models lists what is loaded)")
        if not sep:
            return None
        if sep == "@":
            role = {"champion": Role.CHAMPION, "challenger": Role.CHALLENGER}.get(which)
            slot = self.slots.get(role) if role is not None else None
            if slot is None:
                raise ModelNotFound(f"model {requested!r}: no {which!r} alias loaded here; loaded: "
                                    f"{', '.join(self.model_ids())}")
            return slot.served.version
        if not which.isdigit() or self.slot_for_version(int(which)) is None:
            raise ModelNotFound(f"model {requested!r}: version {which!r} is not loaded here; loaded: "
                                f"{', '.join(self.model_ids())}")
        return int(which)

    def slot_for_version(self, version: int) -> tuple[Role, Slot] | None:
        for role, slot in self.slots.items():
            if slot.served.version == version:
                return role, slot
        return None

    def model_ids(self) -> list[str]:
        """Every `model` value a request may send now: NAME, then NAME:VERSION and NAME@ALIAS per loaded role."""
        ids = [self.name] if self.slots else []
        for role, slot in self.slots.items():
            ids += [slot.served.tag, f"{self.name}@{role.value}"]
        return ids

    def role_for(self, caller_key: str | None) -> Role:
        if Role.CHALLENGER not in self.slots:
            return Role.CHAMPION
        return pick_role(caller_key, self.settings.canary.percent)

    async def predict(self, route: str, item: Any, *, caller_key: str | None = None, request_id: str = "",
                      log_input: Any = None, pin: int | None = None, idx: int = 0) -> Answer:
        """Answer one request: canary routing, challenger failures fall back to the champion, shadow copy.
        A `pin`ned version answers by itself: no canary split, no fallback, no shadow, not judged for rollback."""
        self.check_route(route)
        if pin is not None:
            found = self.slot_for_version(pin)
            if found is None:  # unloaded between resolving and running (a promote or rollback)
                raise ModelNotFound(f"model {self.name}:{pin} is no longer loaded here")
            answer = await self._filter(await self._run(found[0], route, item), route, item)
            self._log_prediction(route, answer, request_id, log_input, sampled=True, idx=idx)
            return answer
        role = self.role_for(caller_key)
        answer, failed = None, None
        if role is Role.CHALLENGER:
            answer, failed = await self._try_challenger(route, item)
        if answer is None:
            answer = await self._run(Role.CHAMPION, route, item)  # raises: the input broke both, not the challenger
            await self._filter(answer, route, item)
            if failed is not None:  # the champion answered what the challenger could not: that counts against it
                await self._judge(*failed, ok=False)
            elif self.settings.shadow and Role.CHALLENGER in self.slots:
                self._spawn(self._shadow(route, item, answer, request_id, log_input, idx))
        else:
            await self._filter(answer, route, item)
        self._log_prediction(route, answer, request_id, log_input, idx=idx)
        return answer

    async def _filter(self, answer: Answer, route: str, item: Any) -> Answer:
        """serving.filters on the answer the caller gets (tunesmith.serving.filters), each action counted; an answer
        that is not JSON valid is generated once more by the same model first (on_invalid_json: retry)."""
        result, logged, actions, retry = apply_filters(self.settings.filters, answer.served, answer.result,
                                                       may_retry=True)
        if retry:
            again = await self._run(answer.role, route, answer.served.family.filters.retry(item))
            answer.latency_s += again.latency_s
            result, logged, more, _ = apply_filters(self.settings.filters, answer.served, again.result)
            actions += more
        if actions:
            answer.result, answer.logged, answer.filters = result, logged, tuple(actions)
            for action in actions:
                self.metrics.filter_actions.labels(answer.served.name, str(answer.served.version),
                                                   *action.split(":", 1)).inc()
        return answer

    async def _run(self, role: Role, route: str, item: Any) -> Answer:
        slot = self.slots.get(role)
        if slot is None:
            raise NoModel(f"no {role.value} loaded")
        start = time.perf_counter()
        try:
            if slot.served.upstream is not None:  # an engine generates (and batches): forwarded as it comes
                result = await asyncio.wait_for(slot.served.family.engine.predict(slot.served, item),
                                                self.settings.request_timeout_s)
            else:
                result = await slot.batcher.submit(item, timeout=self.settings.request_timeout_s)
        except QueueFull:
            self.metrics.rejected.labels("queue_full").inc()
            raise
        except Exception as exc:
            self.metrics.errors.labels(slot.served.name, str(slot.served.version), role.value,
                                       type(exc).__name__).inc()
            self.engine_failed(slot.served, role, exc)
            raise
        return Answer(result, slot.served, role, time.perf_counter() - start)

    def engine_failed(self, served: Served, role: Role, exc: BaseException) -> None:
        """Count a failed answer of an upstream engine (tunesmith_engine_errors_total) by what broke."""
        if served.upstream is None:
            return
        kind = getattr(exc, "kind", None) or ("timeout" if isinstance(exc, TimeoutError) else "bad_response")
        self.metrics.engine_errors.labels(served.name, str(served.version), role.value, kind).inc()

    async def _try_challenger(self, route: str, item: Any) -> tuple[Answer | None, tuple | None]:
        """The challenger's answer, or (None, (served, latency)) so the champion answers instead; the failure is
        judged only once the champion has answered the same input (a request that breaks both is the input's
        fault, and one caller's bad inputs must not roll back a good challenger)."""
        served = self.slots[Role.CHALLENGER].served
        start = time.perf_counter()
        try:
            answer = await self._run(Role.CHALLENGER, route, item)
        except Exception as exc:
            _log.warning("challenger %s failed (%s: %s); the champion answers", served.tag, type(exc).__name__, exc)
            return None, (served, time.perf_counter() - start)
        await self._judge(served, ok=True, latency_s=answer.latency_s)
        return answer, None

    async def _shadow(self, route: str, item: Any, primary: Answer, request_id: str, log_input: Any,
                      idx: int = 0) -> None:
        slot = self.slots.get(Role.CHALLENGER)
        if slot is None:
            return
        start = time.perf_counter()
        try:
            shadow = await self._run(Role.CHALLENGER, route, item)
        except Exception:
            await self._judge(slot.served, ok=False, latency_s=time.perf_counter() - start)
            self._log_prediction(route, primary, request_id, log_input, sampled=True, idx=idx)  # the champion side
            return
        await self._judge(slot.served, ok=True, latency_s=shadow.latency_s)
        shadow.role = Role.SHADOW
        versions = (str(primary.served.version), str(shadow.served.version))
        same = agree(primary.result if primary.logged is None else primary.logged, shadow.result)
        self.metrics.shadow_compared.labels(*versions, str(same).lower()).inc()
        self.metrics.shadow_latency_delta.labels(*versions).observe(shadow.latency_s - primary.latency_s)
        self.metrics.requests.labels(route, shadow.served.name, versions[1], Role.SHADOW.value, "200").inc()
        if self.plog is not None:  # both sides of a shadowed pair are kept, whatever the sample rate
            self._log_prediction(route, primary, request_id, log_input, force=True, idx=idx)
            self._log_prediction(route, shadow, request_id, log_input, force=True, idx=idx)

    async def streamed(self, route: str, item: Any, answer: Answer, *, ok: bool, request_id: str, log_input: Any,
                       pinned: bool = False) -> None:
        """After a streamed answer: judge a canary challenger on it (latency = full completion), log it, and
        shadow a champion stream with a non-streamed copy to the challenger (nobody sees that copy)."""
        routed = not pinned
        if routed and answer.role is Role.CHALLENGER:
            await self._judge(answer.served, ok=ok, latency_s=answer.latency_s)
        if not ok:
            return
        shadow = routed and self.settings.shadow and answer.role is Role.CHAMPION and Role.CHALLENGER in self.slots
        if shadow:
            self._spawn(self._shadow(route, item, answer, request_id, log_input))
        self._log_prediction(route, answer, request_id, log_input, sampled=pinned)

    def _is_challenger(self, served: Served) -> bool:
        current = self.slots.get(Role.CHALLENGER)
        return current is not None and current.served is served  # else already rolled back or replaced

    async def _judge(self, served: Served, latency_s: float = 0.0, *, ok: bool) -> None:
        if not self._is_challenger(served):
            return
        self.window.record(ok, latency_s)
        if self.shared is not None:
            verdict = await self.shared.judge(served.name, served.version, ok=ok, latency_s=latency_s,
                                              slo=self.settings.rollback)
            if verdict is not None:  # None: the store is down, this server's own window judges meanwhile
                await self._act_on(served, verdict)
                return
        reason = self.window.breach(self.settings.rollback)
        if reason is not None:
            await self.rollback(reason)

    async def _act_on(self, served: Served, verdict: Verdict) -> None:
        decision = verdict.decision
        if decision is None or not self._is_challenger(served):
            return
        await self.rollback(decision.reason, decided_by=None if verdict.decided_here else decision.by)

    async def rollback(self, reason: str, *, decided_by: str | None = None) -> None:
        """Stop routing to the challenger; retire it in the registry; log the event and count it. `decided_by`:
        another replica decided this rollback (shared state) and retires it; this server stops routing and logs."""
        slot = self.slots.get(Role.CHALLENGER)
        if slot is None:
            return
        served = slot.served
        self._retired.add(served.version)
        await self.remove(Role.CHALLENGER)
        if decided_by is not None:
            _log.error("ROLLBACK %s: challenger version %s removed from traffic, as replica %s decided: %s",
                       served.name, served.version, decided_by, reason)
            self._event("rollback", version=served.version, reason=reason, decided_by=decided_by)
            return
        self.metrics.rollbacks.labels(served.name, str(served.version), _reason_kind(reason)).inc()
        _log.error("ROLLBACK %s: challenger version %s removed from traffic: %s", served.name, served.version, reason)
        self._event("rollback", version=served.version, reason=reason,
                    **({"decided_by": self.shared.replica} if self.shared is not None else {}))
        if self.store is not None:
            self._spawn(asyncio.to_thread(retire_challenger, self.store, served.name, served.version, reason))

    def _log_prediction(self, route: str, answer: Answer, request_id: str, log_input: Any, force: bool = False,
                        sampled: bool = False, idx: int = 0) -> None:
        """Log one answer: sampled by config, or `force`d (both sides of a shadow pair are always kept)."""
        if self.plog is None or log_input is None:
            return
        shadowed = self.settings.shadow and Role.CHALLENGER in self.slots and answer.role is Role.CHAMPION
        if shadowed and not (force or sampled):
            return  # the shadow task logs this pair
        result = answer.result if answer.logged is None else answer.logged
        confidence = result.get("score") if isinstance(result, dict) else None
        if isinstance(result, list) and result and all(isinstance(e, dict) and "score" in e for e in result):
            confidence = min(e["score"] for e in result)  # extraction: its least sure entity (what review looks at)
        self.plog.record(request_id=request_id, model=answer.served.name, version=answer.served.version,
                         role=answer.role.value, route=route, input=log_input, output=result,
                         confidence=confidence, latency_ms=answer.latency_s * 1000, force=force, idx=idx,
                         filters=list(answer.filters) or None)

    # --- registry watching -----------------------------------------------------------------------------

    async def sync_with_registry(self) -> None:
        """Load whatever the champion / challenger aliases point at now, if it differs from what is served."""
        if self.store is None:
            return
        async with self._reload_lock:
            wanted = await asyncio.to_thread(alias_versions, self.store, self.name)
            await self._sync_role(Role.CHAMPION, wanted.get("champion"))
            rollout = self.settings.challenger or self.settings.shadow or self.settings.canary.percent > 0
            challenger = wanted.get("challenger") if rollout else None
            if challenger is not None and (challenger in self._retired or wanted.get("challenger_retired")):
                challenger = None
            if challenger is not None and challenger == wanted.get("champion"):
                challenger = None
            await self._sync_role(Role.CHALLENGER, challenger)

    async def _sync_role(self, role: Role, version: int | None) -> None:
        current = self.slots.get(role)
        if version is None:
            if current is not None and role is Role.CHALLENGER:
                await self.remove(role)
                self._event("unloaded", role=role.value, version=current.served.version)
            return
        if current is not None and current.served.version == version:
            return
        served = self._already_loaded(version) or await asyncio.to_thread(self._load, version)
        champion = self.slots.get(Role.CHAMPION)
        if role is Role.CHALLENGER and champion is not None and served.task is not champion.served.task:
            _log.error("challenger %s is a %s model but the champion is %s; not routing to it",
                       served.tag, served.task, champion.served.task)
            return
        await self.install(role, served)

    def _already_loaded(self, version: int) -> Served | None:
        for slot in self.slots.values():
            if slot.served.version == version:
                return slot.served  # a promoted challenger is already in memory
        return None

    def _load(self, version: int) -> Served:
        from tunesmith.registry import model_dir_for

        model_dir = model_dir_for(self.name, version, store=self.store)
        if model_dir is None:
            raise NoModel(f"{self.name} version {version} has no model files")
        return load_served(model_dir, name=self.name, version=version, options=self.settings.inference,
                           settings=self.settings)

    async def follow_shared(self) -> None:
        """Drop the challenger if another replica decided its rollback (shared state): every replica within a poll."""
        slot = self.slots.get(Role.CHALLENGER)
        if self.shared is None or slot is None:
            return
        decision = await self.shared.decided(slot.served.name, slot.served.version)
        if decision is not None:
            await self._act_on(slot.served, Verdict(decision, decided_here=decision.by == self.shared.replica))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.follow_shared()
                await self.sync_with_registry()
            except asyncio.CancelledError:
                raise
            except Exception:  # a registry hiccup must not stop serving what is loaded
                _log.exception("registry watch for %s failed; serving the loaded versions", self.name)

    # --- helpers ---------------------------------------------------------------------------------------

    def _on_batch(self, served: Served):
        labels = (served.name, str(served.version))

        def observe(size: int, depth: int) -> None:
            self.metrics.batch_size.labels(*labels).observe(size)
            self.metrics.queue_depth.labels(*labels).set(depth)

        return observe

    def _on_done(self, served: Served):
        """Meter each batch: the cores it held (wall time x torch threads) or the GPU it ran on; price them per
        1,000 items with the config's `cost:` prices."""
        labels = (served.name, str(served.version))
        gpu = _gpu_name(served)
        usage = self.usage.setdefault(served.version, [0, 0.0, 0.0])
        metered = [0.0]  # a family scheduler's busy seconds already metered

        def observe(size: int, seconds: float) -> None:
            usage[0] += size
            if served.scheduler is not None:  # batches overlap in one scheduler: meter its compute, not their waits
                busy = served.scheduler.busy_s
                seconds, metered[0] = busy - metered[0], busy
            if gpu:
                usage[2] += seconds
                self.metrics.busy_core_seconds.labels(*labels, "cuda").inc(seconds)
            else:
                held = seconds * (self.settings.inference.num_threads or torch.get_num_threads())
                usage[1] += held
                self.metrics.busy_core_seconds.labels(*labels, "cpu").inc(held)
            money = self.prices.money(usage[1], usage[2], gpu) if self.prices is not None else None
            if money is not None and usage[0]:
                self.metrics.cost_per_1k.labels(*labels, self.prices.currency).set(money / usage[0] * 1000)

        return observe

    def _update_canary_gauge(self) -> None:
        live = Role.CHALLENGER in self.slots
        self.metrics.canary_percent.set(self.settings.canary.percent if live else 0)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _event(self, kind: str, **fields) -> None:
        event = {"event": kind, "model": self.name, "time": datetime.now(timezone.utc).isoformat(), **fields}
        self.events.append(event)
        del self.events[:-500]  # the newest 500: a long-lived server keeps a bounded history
        _log.info("%s", event)


def _gpu_name(served: Served) -> str | None:
    """The CUDA device a served model runs on, or None on CPU (ONNX sessions included)."""
    device = getattr(served.model, "device", None)
    if getattr(device, "type", None) != "cuda":
        return None
    return torch.cuda.get_device_name(device)


def _split_model(requested: str) -> tuple[str, str, str]:
    """`NAME@ALIAS` / `NAME:VERSION` / `NAME` as (name, separator, alias or version)."""
    for sep in ("@", ":"):
        name, found, which = requested.rpartition(sep)
        if found:
            return name, sep, which
    return requested, "", ""


ROLLBACK_KINDS = ("error_rate", "latency")


def _reason_kind(reason: str) -> str:
    return "error_rate" if reason.startswith("error rate") else "latency"


def alias_versions(store, name: str) -> dict:
    """{"champion": N, "challenger": M, "challenger_retired": bool} from the registry (missing aliases absent)."""
    from tunesmith.registry.versions import require_model

    client = store.client
    model = require_model(client, name)
    out: dict = {alias: int(v) for alias, v in model.aliases.items() if alias in ("champion", "challenger")}
    if "challenger" in out:
        mv = client.get_model_version(name, str(out["challenger"]))
        out["challenger_retired"] = (mv.tags or {}).get(ROLLOUT_TAG) == ROLLED_BACK
    return out


def retire_current_challenger(store, name: str, reason: str, *, who: str) -> int:
    """An operator's `models retire` (CLI or console): retire whatever version `challenger` points at now; returns
    it. Raises RegistryError when there is none."""
    from tunesmith.registry import RegistryError
    from tunesmith.registry.versions import require_model

    current = require_model(store.client, name).aliases.get("challenger")
    if current is None:
        raise RegistryError(f"{name} has no challenger to retire", hint=f"see `tunesmith models show {name}`")
    retire_challenger(store, name, int(current), reason, who=who, action="retire")
    return int(current)


def retire_challenger(store, name: str, version: int, reason: str, *, who: str | None = None,
                      action: str = "auto_rollback") -> None:
    """Registry side of a rollback (a server's automatic one, or `models retire`): tag the version rolled back, drop
    `challenger` if still on it, and add it to the model's audit trail."""
    import os
    import socket

    from tunesmith.registry.audit import record

    record(store, name, action, who=who or f"tunesmith serve on {socket.gethostname()} (pid {os.getpid()})",
           reason=reason, version=int(version))
    client = store.client
    client.set_model_version_tag(name, str(version), ROLLOUT_TAG, ROLLED_BACK)
    client.set_model_version_tag(name, str(version), "tunesmith.rollback_reason", reason[:500])
    client.set_model_version_tag(name, str(version), "tunesmith.rollback_time",
                                 datetime.now(timezone.utc).isoformat(timespec="seconds"))
    model = client.get_registered_model(name)
    if model.aliases.get("challenger") is not None and int(model.aliases["challenger"]) == int(version):
        client.delete_registered_model_alias(name, "challenger")
