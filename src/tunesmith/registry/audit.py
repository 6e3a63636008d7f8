"""The audit trail of a registered model: who promoted, rolled back, retired or deleted which version, when and why.

    record(store, "sentiment", "promote", who="ana", reason="beats v3 on refunds", version=4, previous=3)
    audit_log("sentiment", store=store)   # (registry.catalog) oldest first: [{at, who, action, version, ...}]

Each entry is a registered-model tag `tunesmith.audit.<UTC time>.<random>` holding JSON, so the trail lives in
the registry next to what it describes and is read back in time order; tunesmith only ever adds such tags
(`tunesmith models history NAME` prints them). A reason is required: an entry that says nothing about why is refused.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

from tunesmith.registry.store import RegistryError, Store

PREFIX = "tunesmith.audit."
ACTIONS = ("promote", "rollback", "retire", "auto_rollback", "delete")
MAX_REASON = 1000


def record(store: Store, name: str, action: str, *, who: str, reason: str, version: int | None = None,
           previous: int | None = None) -> dict:
    """Append one entry; returns it. Raises RegistryError for an unknown action or an empty reason."""
    if action not in ACTIONS:
        raise RegistryError(f"audit: unknown action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
    if not (reason or "").strip():
        raise RegistryError(f"{action} of {name} needs a reason", hint="say why: --reason '...' (kept in the "
                                                                     "model's audit trail)")
    now = datetime.now(timezone.utc)
    entry = {"at": now.isoformat(timespec="seconds"), "who": (who or "unknown")[:200], "action": action,
             "version": version, "previous": previous, "reason": reason.strip()[:MAX_REASON]}
    key = f"{PREFIX}{now.strftime('%Y%m%dT%H%M%S.%f')}.{secrets.token_hex(3)}"
    store.client.set_registered_model_tag(name, key, json.dumps(entry))
    return entry
