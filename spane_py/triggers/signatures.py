"""Webhook signatures: the two header schemes a signed webhook takes, read and checked.

``"spane"`` (the default): ``X-Spane-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>``
is the HMAC-SHA256, keyed with the secret, of ``<t>.<raw body>`` (the timestamp as sent, a
dot, the body's bytes). Several ``v1=`` entries may be sent (a sender rotating its secret);
one matching is enough. A timestamp further than the tolerance from this process's clock,
either way, is refused: a captured request cannot be sent again later.

``"github"``: ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw body alone
(GitHub's scheme; the ``sha256=`` prefix may be left out). It has no timestamp: only the
replay memory (``spane_py/triggers/replay.py``) stops a repeat.

Checking runs in two steps, so that a request is refused before its body is read when its
header alone is wrong: ``presented`` reads the header (missing, malformed, outside the
window), ``verify`` compares it with the body (mismatch) in constant time and returns the
request's fingerprint: the same for the same signed request, whatever its header's spelling.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from spane_py.errors import WebhookSignatureError

Scheme = Literal["spane", "github"]
SCHEMES: tuple[Scheme, ...] = ("spane", "github")

SIGNATURE_HEADER = "X-Spane-Signature"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
DEFAULT_TOLERANCE_S = 300
_GITHUB_PREFIX = "sha256="
_MAX_TIMESTAMP_DIGITS = 12  # past the year 30000: enough; bounds the int() of a header
_MAX_V1 = 8  # entries of one header looked at


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _raw(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def sign(secret: str, body: bytes | str, *, timestamp: int | None = None) -> str:
    """The ``X-Spane-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds;
    default: now): ``t=<timestamp>,v1=<hex>``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_hmac(secret, f'{t}.'.encode() + _raw(body))}"


def sign_github(secret: str, body: bytes | str) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``: ``sha256=<hex>`` (GitHub's scheme)."""
    return _GITHUB_PREFIX + _hmac(secret, _raw(body))


def header_name(scheme: Scheme) -> str:
    return GITHUB_SIGNATURE_HEADER if scheme == "github" else SIGNATURE_HEADER


@dataclass(frozen=True, slots=True)
class Presented:
    """A well-formed signature header, not yet compared with the body."""

    scheme: Scheme
    digests: tuple[str, ...]  # lowercase hex
    timestamp: str | None = None  # the "spane" scheme's t, as sent


def _is_hex64(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def presented(
    scheme: Scheme,
    headers: Mapping[str, str],
    *,
    now: float,
    tolerance_s: float,
    where: str,
) -> Presented:
    """The signature header of a request (``headers``: lowercase names), checked on its
    own: present, well formed and, for ``"spane"``, inside the tolerance window."""
    name = header_name(scheme)
    given = headers.get(name.lower(), "").strip()
    if not given:
        expected = (
            f"{name}: sha256=<hex HMAC-SHA256 of the body keyed with the secret>"
            if scheme == "github"
            else f"{name}: t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>' keyed with "
            "the secret>"
        )
        raise WebhookSignatureError(
            f"webhook {where} needs a signature: send {expected}",
            details={"reason": "missing", "header": name},
        )
    if scheme == "github":
        digest = given[len(_GITHUB_PREFIX) :] if given.lower().startswith(_GITHUB_PREFIX) else given
        if not _is_hex64(digest):
            raise WebhookSignatureError(
                f"webhook {where}: {name} is not sha256=<64 hex digits>",
                details={"reason": "malformed", "header": name},
            )
        return Presented("github", (digest.lower(),))
    return _presented_spane(given, now=now, tolerance_s=tolerance_s, where=where)


def _presented_spane(given: str, *, now: float, tolerance_s: float, where: str) -> Presented:
    timestamp: str | None = None
    digests: list[str] = []
    for part in given.split(",")[: _MAX_V1 + 1]:
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = value.strip()
        elif key == "v1" and _is_hex64(value.strip()):
            digests.append(value.strip().lower())
    if (
        timestamp is None
        or not timestamp.isascii()
        or not timestamp.isdigit()
        or len(timestamp) > _MAX_TIMESTAMP_DIGITS
        or not digests
    ):
        hint = ""
        if given.strip().lower().startswith(_GITHUB_PREFIX):
            hint = (
                " (sha256=<hex> without a timestamp is the scheme of earlier versions: sign "
                "t=<unix seconds>,v1=<hmac of '<t>.<body>'>, or give the hook "
                f'"signature": "github" and send {GITHUB_SIGNATURE_HEADER})'
            )
        raise WebhookSignatureError(
            f"webhook {where}: {SIGNATURE_HEADER} is not t=<unix seconds>,v1=<64 hex digits>"
            + hint,
            details={"reason": "malformed", "header": SIGNATURE_HEADER},
        )
    age = now - int(timestamp)
    if abs(age) > tolerance_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise WebhookSignatureError(
            f"webhook {where}: the signature's timestamp is {when}, outside the tolerance of "
            f"{tolerance_s:g} s (sign each request when it is sent)",
            details={"reason": "outside_window", "header": SIGNATURE_HEADER},
        )
    return Presented("spane", tuple(digests), timestamp)


def verify(secret: str, given: Presented, raw: bytes, *, where: str) -> str:
    """Compare ``given`` with the body in constant time; the request's fingerprint: the
    expected digest, which names this body (and timestamp) signed with this secret."""
    message = raw if given.timestamp is None else f"{given.timestamp}.".encode() + raw
    expected = _hmac(secret, message)
    matched = False
    for digest in given.digests:  # every entry compared: the time does not tell which
        matched |= hmac.compare_digest(expected.encode(), digest.encode())
    if not matched:
        raise WebhookSignatureError(
            f"webhook {where}: the signature does not match the body",
            details={"reason": "mismatch", "header": header_name(given.scheme)},
        )
    return expected


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "GITHUB_SIGNATURE_HEADER",
    "SCHEMES",
    "SIGNATURE_HEADER",
    "Presented",
    "Scheme",
    "header_name",
    "presented",
    "sign",
    "sign_github",
    "verify",
]
