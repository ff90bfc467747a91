"""Webhook triggers: ``engine.trigger_webhook(path, method, body, headers)``.

The bindings live in the store, so any process sharing it — an API server that never
registered a workflow — can trigger them. Checks, in order, each refusing with nothing
started: a workflow is bound to the path and method and is active (``WebhookNotFoundError``,
404); with a secret, the signature (``WebhookSignatureError``, 401); the body is JSON
(``WebhookPayloadError``, 400).

Signature: ``X-Spane-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body bytes keyed
with the secret (``sign`` computes it). GitHub's ``X-Hub-Signature-256`` header (same
format) is accepted too, so a GitHub webhook works unchanged; the ``sha256=`` prefix may be
left out. Compared in constant time (``hmac.compare_digest``).

The started execution's initial data is the parsed body; its metadata says
``{"trigger": "webhook", "path": ..., "method": ...}``. An ``Idempotency-Key`` header makes
a sender's retry of one delivery start nothing new (the key is kept with the execution for
the engine's ``idempotency_ttl_seconds``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from spane_py import _json
from spane_py.definitions.models import normalize_webhook_path
from spane_py.errors import (
    SerializationError,
    SpaneError,
    WebhookNotFoundError,
    WebhookPayloadError,
    WebhookSignatureError,
)
from spane_py.observability import events
from spane_py.stores.base import ExecutionStore, WebhookRecord

SIGNATURE_HEADER = "X-Spane-Signature"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_PREFIX = "sha256="

# (workflow_id, initial_data, idempotency_key, metadata) -> execution id
StartExecution = Callable[[str, Any, str | None, Mapping[str, Any]], Awaitable[str]]
IsActive = Callable[[str], Awaitable[bool]]


def sign(secret: str, body: bytes | str) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    return _PREFIX + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def trigger(
    store: ExecutionStore,
    start: StartExecution,
    is_active: IsActive,
    path: str,
    method: str,
    body: Any,
    headers: Mapping[str, str] | None,
) -> list[str]:
    where = f"{method} /{path}"
    try:
        binding = await _binding(store, is_active, path, method)
        where = f"{binding.method} /{binding.path}"
        header = _headers(headers)
        raw, data = _parse(body, signed=binding.secret is not None, where=where)
        if binding.secret is not None:
            _check_signature(binding.secret, raw, header, where)
    except SpaneError as exc:
        events.emit(
            events.WEBHOOK_REJECTED,
            logging.WARNING,
            path=path,
            method=method,
            reason=exc.details.get("reason", exc.code),
        )
        raise
    key = header.get(IDEMPOTENCY_HEADER.lower())
    metadata = {"trigger": "webhook", "path": binding.path, "method": binding.method}
    execution_id = await start(
        binding.workflow_id,
        data,
        f"webhook:{where}:{key}" if key else None,
        metadata,
    )
    events.emit(
        events.WEBHOOK_ACCEPTED,
        path=binding.path,
        method=binding.method,
        workflow_id=binding.workflow_id,
        execution_id=execution_id,
    )
    return [execution_id]


async def _binding(
    store: ExecutionStore, is_active: IsActive, path: str, method: str
) -> WebhookRecord:
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
    if not await is_active(binding.workflow_id):
        raise WebhookNotFoundError(
            f"the webhook {verb} /{clean} starts workflow {binding.workflow_id!r}, which is "
            "deactivated",
            workflow_id=binding.workflow_id,
            details={"reason": "inactive", "path": clean, "method": verb},
        )
    return binding


def _headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Header names are case-insensitive: lowercased here."""
    if headers is None:
        return {}
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _parse(body: Any, *, signed: bool, where: str) -> tuple[bytes, Any]:
    """The raw bytes (what a signature covers) and the JSON value of ``body``."""
    if isinstance(body, bytes | bytearray | memoryview | str):
        raw = body.encode() if isinstance(body, str) else bytes(body)
        if not raw.strip():
            return raw, None  # an empty body (a GET ping): no data
        try:
            return raw, _json.loads(raw)
        except Exception as exc:
            raise WebhookPayloadError(
                f"webhook {where}: the body is not JSON ({exc})",
                details={"reason": "not_json"},
            ) from None
    if signed:
        raise WebhookPayloadError(
            f"webhook {where} is signed: pass the body as the bytes (or text) received, "
            "which the signature covers, not as a parsed value",
            details={"reason": "raw_body_required"},
        )
    try:
        _json.dumps(body, what=f"the body of webhook {where}")
    except SerializationError as exc:
        raise WebhookPayloadError(exc.message, details={"reason": "not_json"}) from None
    return b"", body


def _check_signature(secret: str, raw: bytes, headers: Mapping[str, str], where: str) -> None:
    given = headers.get(SIGNATURE_HEADER.lower()) or headers.get(GITHUB_SIGNATURE_HEADER.lower())
    if not given:
        raise WebhookSignatureError(
            f"webhook {where} needs a signature: send {SIGNATURE_HEADER}: sha256=<hex "
            "HMAC-SHA256 of the body keyed with the secret>",
            details={"reason": "missing"},
        )
    digest = given.strip()
    if digest.lower().startswith(_PREFIX):
        digest = digest[len(_PREFIX) :]
    if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise WebhookSignatureError(
            f"webhook {where}: the signature is not sha256=<64 hex digits>",
            details={"reason": "malformed"},
        )
    expected = sign(secret, raw)[len(_PREFIX) :]
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise WebhookSignatureError(
            f"webhook {where}: the signature does not match the body",
            details={"reason": "mismatch"},
        )
