"""Webhook triggers: ``engine.trigger_webhook(path, method, body, headers)``.

The bindings live in the store, so any process sharing it — an API server that never
registered a workflow — can trigger them. Checks, in order, each refusing with nothing
started:

1. a workflow is bound to the path and method and is active (``WebhookNotFoundError``, 404);
2. with a secret, the signature header alone: present, well formed, its timestamp inside
   the tolerance (``WebhookSignatureError``, 401) — before a byte of the body is read;
3. the body's size: by ``Content-Length``, then while it is read, never holding more than
   the limit and one chunk (``WebhookPayloadTooLargeError``, 413);
4. with a secret, the signature against the body (``WebhookSignatureError``, 401);
5. the body is JSON within the payload limits (``WebhookPayloadError``, 400).

An unsigned or wrongly signed request to a signed hook so never learns how its body parses.
Signature schemes: ``spane_py/triggers/signatures.py``. A signed request seen before (the
same signature, inside the window) starts nothing and is answered with the first
execution's id (``spane_py/triggers/replay.py``).

The started execution's initial data is the parsed body; its metadata says
``{"trigger": "webhook", "path": ..., "method": ...}``. On an unsigned hook, an
``Idempotency-Key`` header makes a sender's retry of one delivery start nothing new (the key
is kept with the execution for the engine's ``idempotency_ttl_seconds``). A signed hook
ignores that header, which its signature does not cover: there the signature itself is the
delivery's key.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any

from spane_py import _json
from spane_py.definitions.models import WebhookTrigger, WorkflowDefinition, normalize_webhook_path
from spane_py.errors import (
    SerializationError,
    SpaneError,
    WebhookNotFoundError,
    WebhookPayloadError,
    WebhookPayloadTooLargeError,
)
from spane_py.limits import DEFAULT_LIMITS, Limits, check_size, encode_payload
from spane_py.observability import events
from spane_py.records import WebhookRecord
from spane_py.stores.base import ExecutionStore
from spane_py.triggers import signatures
from spane_py.triggers.replay import ReplayMemory, fingerprint_key
from spane_py.triggers.signatures import (
    DEFAULT_TOLERANCE_S,
    GITHUB_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    sign,
    sign_github,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"

# (workflow_id, initial_data, idempotency_key, metadata) -> execution id
StartExecution = Callable[[str, Any, str | None, Mapping[str, Any]], Awaitable[str]]
# workflow_id -> its latest active definition (None: not registered, or deactivated)
ActiveDefinition = Callable[[str], Awaitable[WorkflowDefinition | None]]
Clock = Callable[[], float]  # unix seconds


async def trigger(
    store: ExecutionStore,
    start: StartExecution,
    active_definition: ActiveDefinition,
    path: str,
    method: str,
    body: Any,
    headers: Mapping[str, str] | None,
    limits: Limits = DEFAULT_LIMITS,
    *,
    replay: ReplayMemory | None = None,
    clock: Clock = time.time,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> list[str]:
    """``body``: the bytes or text received, an async iterable of its chunks (read here,
    within the limit), or an already parsed value (unsigned hooks only)."""
    where = f"{method} /{path}"
    try:
        binding, hook = await _binding(store, active_definition, path, method)
        where = f"{binding.method} /{binding.path}"
        header = _headers(headers)
        window = float(hook.tolerance_seconds or tolerance_s) if hook else float(tolerance_s)
        scheme: signatures.Scheme = hook.signature if hook else "spane"
        secret = binding.secret
        given = (
            signatures.presented(scheme, header, now=clock(), tolerance_s=window, where=where)
            if secret is not None
            else None
        )
        raw = await _receive(body, header, where=where, limit=limits.max_payload_bytes)
        fingerprint = None
        if secret is not None and given is not None:
            if raw is None:
                raise WebhookPayloadError(
                    f"webhook {where} is signed: pass the body as the bytes (or text) "
                    "received, which the signature covers, not as a parsed value",
                    details={"reason": "raw_body_required"},
                )
            fingerprint = signatures.verify(secret, given, raw, where=where)
            # Still inside the window now that the body is in: a body trickled in slowly must
            # not carry a request past the window (and past the replay memory's).
            signatures.presented(scheme, header, now=clock(), tolerance_s=window, where=where)
        data = _parse(raw, body, where=where, limits=limits)
    except SpaneError as exc:
        _rejected(path, method, exc)
        raise
    metadata = {"trigger": "webhook", "path": binding.path, "method": binding.method}
    if fingerprint is None:
        delivery = header.get(IDEMPOTENCY_HEADER.lower())
        # hashed: a key of any length, on a path of any length, stays a valid idempotency key
        key = hashlib.sha256(f"{where}\n{delivery}".encode()).hexdigest() if delivery else None
        execution_id = await start(
            binding.workflow_id, data, f"webhook:{key}" if key else None, metadata
        )
    else:
        # "spane": a timestamp is accepted within the window on either side of the clocks of
        # the processes that check it, so it is remembered for both sides; "github": for the
        # window.
        memory_s = 2 * window if scheme == "spane" else window
        execution_id, seen = await _start_once(
            replay, start, binding, data, metadata, fingerprint_key(where, fingerprint), memory_s
        )
        if seen:
            _emit(events.WEBHOOK_DUPLICATE, binding, execution_id)  # nothing started
            return [execution_id]
    _emit(events.WEBHOOK_ACCEPTED, binding, execution_id)
    return [execution_id]


async def _start_once(
    replay: ReplayMemory | None,
    start: StartExecution,
    binding: WebhookRecord,
    data: Any,
    metadata: Mapping[str, Any],
    digest: str,
    memory_s: float,
) -> tuple[str, bool]:
    """Start the execution of a signed request unless it was seen inside ``memory_s``; its
    id, and whether it is the first execution's, found again (nothing started)."""
    first = await replay.claim(digest, memory_s) if replay is not None else None
    if first:
        return first, True
    # First seen, or seen by a request still starting (or one that failed to): the
    # signature as idempotency key makes the store start one execution for all of them.
    execution_id = await start(binding.workflow_id, data, f"webhook:sig:{digest}", metadata)
    if replay is not None:
        await replay.remember(digest, execution_id, memory_s)
    return execution_id, False


def _emit(event: str, binding: WebhookRecord, execution_id: str) -> None:
    events.emit(
        event,
        path=binding.path,
        method=binding.method,
        workflow_id=binding.workflow_id,
        execution_id=execution_id,
    )


def _rejected(path: str, method: str, exc: SpaneError) -> None:
    events.emit(  # the sender's mistake (or an attack), not ours: info
        events.WEBHOOK_REJECTED,
        path=path,
        method=method,
        reason=exc.details.get("reason", exc.code),
    )


async def _binding(
    store: ExecutionStore, active_definition: ActiveDefinition, path: str, method: str
) -> tuple[WebhookRecord, WebhookTrigger | None]:
    """The binding of ``method /path`` and its trigger in the latest active definition."""
    if not isinstance(path, str) or not isinstance(method, str):
        raise WebhookNotFoundError(
            f"a webhook is found by its path and method, as strings; got {path!r}, {method!r}",
            details={"reason": "not_found"},
        )
    try:
        clean = normalize_webhook_path(path)
    except ValueError:
        clean = ""
    verb = method.upper()
    binding = await store.get_webhook(clean, verb) if clean else None
    if binding is None:
        others = [w.method for w in await store.list_webhooks() if w.path == clean]
        hint = f" (it takes {', '.join(others)})" if others else ""
        raise WebhookNotFoundError(
            f"no workflow is bound to the webhook {verb} /{clean}{hint}",
            details={"reason": "not_found", "path": clean, "method": verb},
        )
    definition = await active_definition(binding.workflow_id)
    if definition is None:
        raise WebhookNotFoundError(
            f"the webhook {verb} /{clean} starts workflow {binding.workflow_id!r}, which is "
            "deactivated",
            workflow_id=binding.workflow_id,
            details={"reason": "inactive", "path": clean, "method": verb},
        )
    hook = next(
        (
            t
            for t in definition.triggers
            if isinstance(t, WebhookTrigger) and t.path == clean and t.method == verb
        ),
        None,
    )
    return binding, hook


def _headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Header names are case-insensitive: lowercased here."""
    if headers is None:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _too_large(where: str, size: str, limit: int) -> WebhookPayloadTooLargeError:
    return WebhookPayloadTooLargeError(
        f"the body of webhook {where} has {size} bytes, over the limit of {limit} bytes",
        details={"reason": "too_large", "limit": limit},
    )


async def _receive(
    body: Any, headers: Mapping[str, str], *, where: str, limit: int
) -> bytes | None:
    """The body's bytes, read within ``limit`` (None: ``body`` is a parsed value)."""
    if isinstance(body, bytes | bytearray | memoryview | str):
        raw = body.encode() if isinstance(body, str) else bytes(body)
        try:
            check_size(raw, what=f"the body of webhook {where}", limit=limit)
        except SerializationError:
            raise _too_large(where, str(len(raw)), limit) from None
        return raw
    if not isinstance(body, AsyncIterable):
        return None
    declared = headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(where, declared, limit)  # refused before a byte is read
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limit:  # held: at most the limit and this chunk
                raise _too_large(where, f"more than {limit}", limit)
            parts.append(bytes(chunk))
    finally:
        closer = getattr(body, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
    return b"".join(parts)


def _parse(raw: bytes | None, body: Any, *, where: str, limits: Limits) -> Any:
    """The JSON value of the body (an empty body: None), within the payload limits."""
    what = f"the body of webhook {where}"
    if raw is not None:
        if not raw.strip():
            return None  # an empty body (a GET ping): no data
        try:
            data = _json.loads(raw)
        except Exception as exc:
            raise WebhookPayloadError(
                f"webhook {where}: the body is not JSON ({exc})",
                details={"reason": "not_json"},
            ) from None
    else:
        data = body
    try:
        encode_payload(data, what=what, limits=limits)  # not JSON, too deep, too large
    except SerializationError as exc:
        raise WebhookPayloadError(exc.message, details={"reason": "invalid"}) from None
    return data


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "GITHUB_SIGNATURE_HEADER",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "sign",
    "sign_github",
    "trigger",
]
