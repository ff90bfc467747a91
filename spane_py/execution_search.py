"""Searching executions by their metadata and input: ``metadata.tenant=acme``,
``input.customer_id=7``, and the one rule both stores apply to it.

A ``FieldMatch`` is an equality on a JSON path of an execution's ``metadata`` or its input
(``initial_data``), defined as PostgreSQL's jsonb containment (``@>``) of the object the
path and value build (``metadata.a.b=1`` -> ``{"a": {"b": 1}}``):

* every key of the path exists, each holding an object, down to the last one;
* a scalar there equals the value: strings exactly, numbers by value (``1`` equals
  ``1.0``, never ``true``), ``true``/``false`` and ``null`` only themselves;
* an object value is contained (each of its keys is there, recursively), an array value
  too (each of its elements is contained by some element of the stored array: so
  ``metadata.tags=["urgent"]`` finds the executions whose ``tags`` hold ``"urgent"``).

The PostgreSQL store asks ``metadata @> $1`` (an index on the column can serve it), the
in-memory store calls ``contains``; the contract suite holds them to the same answers.

The text form is ``<metadata|input>.<key>[.<key>...]=<value>``: the value is read as JSON
when it is JSON (``7``, ``true``, ``"7"``, ``["a"]``) and as a string otherwise
(``acme``); a key cannot contain a dot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from spane_py import _json
from spane_py.errors import SerializationError

Source = Literal["metadata", "input"]
SOURCES: tuple[Source, ...] = ("metadata", "input")
MAX_PATH = 8  # keys in a path
MAX_KEY = 128  # characters in a key


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """``source`` (``metadata`` or ``input``) holds ``value`` at ``path`` (its keys)."""

    source: Source
    path: tuple[str, ...]
    value: Any

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"a field match is on metadata or input, not {self.source!r}")
        if not self.path or len(self.path) > MAX_PATH:
            raise ValueError(f"a field match's path has 1 to {MAX_PATH} keys")
        for key in self.path:
            if not key or len(key) > MAX_KEY or "." in key:
                raise ValueError(
                    f"a key of a field match's path is 1 to {MAX_KEY} characters, "
                    f"without a dot (got {key!r})"
                )
        _json.dumps(self.pattern(), what="a field match")  # storable JSON, or SerializationError

    @classmethod
    def parse(cls, text: str) -> FieldMatch:
        """``metadata.tenant=acme`` -> ``FieldMatch("metadata", ("tenant",), "acme")``;
        ``ValueError`` with a message saying what is wrong."""
        left, eq, raw = text.partition("=")
        source, _, dotted = left.strip().partition(".")
        if not eq or source not in SOURCES or not dotted:
            raise ValueError(
                f"{text!r} is not a field match: write metadata.<key>=<value> or "
                "input.<key>=<value> (for example metadata.tenant=acme)"
            )
        try:
            value = _json.loads(raw) if raw.strip() else raw
        except SerializationError:
            value = raw  # not JSON: the text itself
        return cls(source, tuple(dotted.split(".")), value)

    def pattern(self) -> dict[str, Any]:
        """The object the document must contain: the path's keys around the value."""
        value: Any = self.value
        for key in reversed(self.path):
            value = {key: value}
        assert isinstance(value, dict)
        return value

    def matches(self, metadata: Mapping[str, Any], initial_data: Any) -> bool:
        doc = dict(metadata) if self.source == "metadata" else initial_data
        return contains(doc, self.pattern())

    def __str__(self) -> str:
        """The text form, which ``parse`` reads back as this match."""
        value = self.value
        text = value if isinstance(value, str) and _plain(value) else _json.dumps(value)
        return f"{self.source}.{'.'.join(self.path)}={text}"


def _plain(text: str) -> bool:
    """Whether ``parse`` reads ``text`` as the string itself (it is not JSON)."""
    if not text.strip():
        return True
    try:
        _json.loads(text)
    except SerializationError:
        return True
    return False


def contains(doc: Any, pattern: Any) -> bool:
    """Whether JSON value ``doc`` contains ``pattern``, as jsonb ``doc @> pattern`` says
    (below the top level: a primitive is not contained by an array holding it)."""
    if isinstance(pattern, dict):
        return isinstance(doc, dict) and all(
            key in doc and contains(doc[key], value) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(doc, list) and all(any(contains(d, p) for d in doc) for p in pattern)
    if isinstance(pattern, bool) or isinstance(doc, bool):
        return type(doc) is type(pattern) and doc == pattern
    if isinstance(pattern, int | float):
        return isinstance(doc, int | float) and doc == pattern
    if isinstance(doc, dict | list):
        return False
    return bool(doc == pattern)


__all__ = ["MAX_KEY", "MAX_PATH", "SOURCES", "FieldMatch", "Source", "contains"]
