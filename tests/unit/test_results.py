"""ExecutionResult and its helpers (SPANE's successResult / errorResult / skippedResult)."""

from __future__ import annotations

import dataclasses

import pytest

from spane_py.results import ExecutionResult, error_result, skipped_result, success_result


def test_success_result() -> None:
    assert success_result({"a": 1}) == ExecutionResult(success=True, data={"a": 1})
    assert success_result() == ExecutionResult(success=True)
    chosen = success_result(1, next_nodes=["b"])
    assert chosen.next_nodes == ["b"]
    assert chosen.skipped is False
    assert chosen.error is None


def test_success_result_with_no_next_nodes_chooses_none() -> None:
    result = success_result(next_nodes=[])
    assert result.next_nodes == []
    assert result.next_nodes is not None


def test_error_result_from_a_message() -> None:
    assert error_result("disk full") == ExecutionResult(success=False, error="disk full")


def test_error_result_from_an_exception() -> None:
    assert error_result(ValueError("bad value")).error == "bad value"
    assert error_result(TimeoutError()).error == "TimeoutError"


def test_error_result_from_an_empty_message_still_has_an_error() -> None:
    result = error_result("")
    assert result.success is False
    assert result.error == "error"


def test_skipped_result() -> None:
    result = skipped_result()
    assert result.success is True
    assert result.skipped is True
    assert result.data is None
    assert skipped_result({"why": "no rows"}).data == {"why": "no rows"}


def test_results_are_immutable() -> None:
    result = success_result(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.data = 2  # type: ignore[misc]


def test_positional_construction_matches_spane_field_order() -> None:
    # the runner builds ExecutionResult(True, value)
    result = ExecutionResult(True, 5, None, ("x",), False)
    assert (result.success, result.data, result.error, result.next_nodes, result.skipped) == (
        True,
        5,
        None,
        ("x",),
        False,
    )
