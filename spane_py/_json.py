"""JSON encoding for everything spane_py stores or sends: strict, never pickle.

User data (initial data, node outputs) must be plain JSON, and what is read back equals what
was written: non-string dict keys, NaN and Infinity, datetimes, dataclasses and other
non-JSON values are refused with a ``SerializationError`` rather than quietly converted.
orjson does the encoding; it writes NaN as ``null``, so output that contains ``null`` is
checked once more with the standard library's strict encoder.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from spane_py._text import find_bad_text
from spane_py.errors import SerializationError

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any, *, what: str = "value") -> str:
    """Encode ``value`` as compact JSON text, or raise SerializationError naming ``what``."""
    try:
        raw = orjson.dumps(value, option=_STRICT)
    except TypeError as exc:
        if "surrogates not allowed" in str(exc):
            raise SerializationError(_unstorable(value, what)) from exc
        raise SerializationError(f"{what} is not JSON-serializable: {_reason(exc)}") from exc
    if b"\\u0000" in raw and _has_nul(raw):
        raise SerializationError(_unstorable(value, what))
    if b"null" in raw:  # perhaps a NaN or an Infinity that orjson wrote as null
        try:
            _encoder.encode(value)
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"{what} is not JSON-serializable: {_reason(exc)}") from exc
    return raw.decode()


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"invalid JSON: {exc}") from exc


def dumps_bytes(value: Any) -> bytes:
    """Fast encoder for spane_py's own payloads (ids, numbers, plain strings)."""
    return orjson.dumps(value)


def _unstorable(value: Any, what: str) -> str:
    """The message for a value holding a NUL character or a lone surrogate, naming where."""
    found = find_bad_text(value, "$")
    if found is None:  # cannot happen: orjson and the walk see the same strings
        return f"{what} is not storable: a string contains a NUL character or a lone surrogate"
    where, problem = found
    return f"{what} is not storable: {'it' if where == '$' else where} {problem}"


def _has_nul(raw: bytes) -> bool:
    """Whether JSON text escapes a NUL: a ``\\u0000`` whose backslash is not itself escaped."""
    start = raw.find(b"\\u0000")
    while start != -1:
        run = 0
        while start - run - 1 >= 0 and raw[start - run - 1] == 0x5C:  # backslashes before it
            run += 1
        if run % 2 == 0:
            return True
        start = raw.find(b"\\u0000", start + 1)
    return False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nesting is too deep"
    text = str(exc)
    if "Out of range float values" in text:
        return "NaN and Infinity are not valid JSON numbers"
    if "Dict key must be str" in text:
        return "a dict has a key that is not a string (JSON object keys are strings)"
    if "Recursion limit reached" in text:
        return "nesting is too deep"
    if "Integer exceeds 64-bit range" in text:
        return "an integer does not fit in 64 bits"
    return text
