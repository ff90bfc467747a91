"""FieldMatch: the text form (``metadata.tenant=acme``) and jsonb containment in Python
(the stores are held to the same answers by tests/contract/test_listing.py)."""

from __future__ import annotations

from typing import Any

import pytest

from spane_py.execution_search import FieldMatch, contains


@pytest.mark.parametrize(
    ("text", "source", "path", "value"),
    [
        ("metadata.tenant=acme", "metadata", ("tenant",), "acme"),
        ("input.customer_id=7", "input", ("customer_id",), 7),
        ('input.customer_id="7"', "input", ("customer_id",), "7"),
        ("metadata.a.b.c=true", "metadata", ("a", "b", "c"), True),
        ("metadata.x=", "metadata", ("x",), ""),
        ("metadata.x=a=b", "metadata", ("x",), "a=b"),
        ('metadata.tags=["a"]', "metadata", ("tags",), ["a"]),
        ("metadata.v=007", "metadata", ("v",), "007"),  # not JSON: the text
        ("metadata.n=null", "metadata", ("n",), None),
    ],
)
def test_parse(text: str, source: str, path: tuple[str, ...], value: Any) -> None:
    match = FieldMatch.parse(text)
    assert (match.source, match.path, match.value) == (source, path, value)
    assert FieldMatch.parse(str(match)) == match


@pytest.mark.parametrize(
    "text",
    ["tenant=acme", "metadata=acme", "metadata.=x", "output.x=1", "metadata.a..b=1", "metadata.x"],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"field match|key"):
        FieldMatch.parse(text)


def test_pattern() -> None:
    assert FieldMatch("metadata", ("a", "b"), 1).pattern() == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("doc", "pattern", "expected"),
    [
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1.0}, {"a": 1}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": None}, {"a": None}, True),
        ({}, {"a": None}, False),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, True),
        ({"a": [1, 2]}, {"a": [2]}, True),
        ({"a": [1, 2]}, {"a": [2, 2, 1]}, True),
        ({"a": [1, 2]}, {"a": 2}, False),
        ({"a": [1, [2]]}, {"a": [[2]]}, True),
        ({"a": [1, [2]]}, {"a": [2]}, False),
        ({"a": [{"b": 1, "c": 2}]}, {"a": [{"b": 1}]}, True),
        ({"a": {"b": 1}}, {"a": "x"}, False),
        ([1], {"a": 1}, False),
        ("x", {"a": 1}, False),
    ],
)
def test_contains(doc: Any, pattern: Any, expected: bool) -> None:
    assert contains(doc, pattern) is expected
