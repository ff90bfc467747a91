"""Text that the stores can hold: no NUL character, no lone surrogate.

PostgreSQL refuses the NUL character (``\\u0000``) in ``text`` and ``jsonb`` values, and a
lone UTF-16 surrogate (``"\\ud800"``, which JSON's ``\\uXXXX`` escapes can produce and
Python keeps as is) is not Unicode text at all: it cannot be encoded as UTF-8, so it can be
neither stored nor sent. Every way in (the HTTP API, the engine's methods, definitions)
checks its text with these functions, so both stores refuse the same values, with an error
that names the field instead of the driver's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from spane_py.errors import InvalidInputError

# The NUL character, and UTF-16 surrogates (which a valid str holds only in pairs as
# escapes, never as code points).
_BAD = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (``None``: it can)."""
    found = _BAD.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "contains the NUL character (\\u0000), which cannot be stored"
    return (
        f"contains a lone surrogate (\\u{ord(char):04x}), which is not valid Unicode text "
        "(a \\uXXXX escape of half a character)"
    )


def find_bad_text(value: Any, where: str = "") -> tuple[str, str] | None:
    """The first string in ``value`` (a JSON-like value: keys too) that cannot be stored:
    ``(where, why)``, ``where`` a path such as ``config.urls[2]``; ``None`` when all can.
    Iterative, so any depth is safe."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return path, problem
        elif isinstance(item, Mapping):
            children: list[tuple[Any, str]] = []
            for key, child in item.items():
                if isinstance(key, str):
                    problem = text_problem(key)
                    if problem is not None:
                        return path, f"has a key that {problem}"
                    children.append((child, f"{path}.{key}" if path else key))
                else:
                    children.append((child, f"{path}[{key!r}]"))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def storable(text: str) -> str:
    """``text`` with each NUL character and lone surrogate replaced by U+FFFD (the
    replacement character): for text that is only read by people (error messages,
    tracebacks, log lines), which must be stored whatever a node's code put in them."""
    return _BAD.sub("\ufffd", text) if _BAD.search(text) else text


def storable_value(value: Any) -> Any:
    """``value`` (a log line's fields, say) with ``storable`` applied to every string in
    it, keys too; other values are returned as they are (and a value whose text is all
    storable is returned itself)."""
    if find_bad_text(value) is None:
        return value
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return {
            storable(k) if isinstance(k, str) else k: storable_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [storable_value(v) for v in value]
    return value


def check_argument(field: str, value: object, **ids: str | None) -> None:
    """Refuse an argument of a public method whose text cannot be stored, with an
    ``InvalidInputError`` naming it (``ids``: the error's workflow/execution ids)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidInputError(f"{field} {problem}", details={"field": field}, **ids)


__all__ = ["check_argument", "find_bad_text", "storable", "storable_value", "text_problem"]
