"""JSON encoding for everything spane_py stores or sends: strict, never pickle.

User data (initial data, node outputs) is encoded with the standard library encoder with
``allow_nan=False`` so NaN and Infinity are refused instead of silently becoming ``null``;
decoding uses orjson, which is faster and refuses the same literals.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from spane_py.errors import SerializationError

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any, *, what: str = "value") -> str:
    """Encode ``value`` as compact JSON text, or raise SerializationError naming ``what``."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{what} is not JSON-serializable: {_reason(exc)}") from exc


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"invalid JSON: {exc}") from exc


def dumps_bytes(value: Any) -> bytes:
    """Fast encoder for spane_py's own payloads (ids, numbers, plain strings)."""
    return orjson.dumps(value)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nesting is too deep"
    text = str(exc)
    if "Out of range float values" in text:
        return "NaN and Infinity are not valid JSON numbers"
    return text
