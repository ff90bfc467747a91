"""spane_py's JSON encoding: what is read back equals what was written, or it is refused."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from spane_py import SerializationError, _json


@pytest.mark.parametrize(
    "value",
    [None, 0, False, "", [], {}, 1.5, -(2**63), 2**63 - 1, "é\u2028", {"a": [1, None, True]}],
)
def test_round_trip_is_exact(value: Any) -> None:
    assert _json.loads(_json.dumps(value)) == value


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1: "x"}, "key that is not a string"),
        ({"a": {(1, 2): "x"}}, "key that is not a string"),
        (float("nan"), "NaN and Infinity"),
        ([1, float("-inf")], "NaN and Infinity"),
        ({"v": float("inf"), "n": None}, "NaN and Infinity"),
        (datetime.date(2026, 1, 1), "not JSON serializable"),
        (Point(1), "not JSON serializable"),
        ({1, 2}, "not JSON serializable"),
        (b"bytes", "not JSON serializable"),
        (2**64, "64 bits"),
    ],
)
def test_non_json_values_are_refused_with_the_reason(value: Any, reason: str) -> None:
    with pytest.raises(SerializationError, match="the output of node 'n'") as info:
        _json.dumps(value, what="the output of node 'n'")
    assert reason in str(info.value)


def test_deep_nesting_is_refused() -> None:
    value: list[Any] = []
    for _ in range(1000):
        value = [value]
    with pytest.raises(SerializationError, match="nesting is too deep"):
        _json.dumps(value)


def test_invalid_json_text_is_refused() -> None:
    with pytest.raises(SerializationError, match="invalid JSON"):
        _json.loads("{'a': NaN}")


def test_nul_characters_are_refused() -> None:
    with pytest.raises(SerializationError, match="NUL character"):
        _json.dumps({"a": "x\x00y"})
    assert _json.loads(_json.dumps("\\u0000")) == "\\u0000"  # a backslash, then u0000: fine
