"""What a node executor returns (SPANE's ``ExecutionResult``) and its helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """The outcome of one node run.

    ``next_nodes`` chooses among the node's outputs (None: all of them, ``[]``: none);
    children not chosen are skipped. ``success=False`` fails the node without retrying;
    raise an exception instead to have the node's retry policy apply.
    """

    success: bool
    data: Any = None
    error: str | None = None
    next_nodes: Sequence[str] | None = None
    skipped: bool = False


def success_result(data: Any = None, *, next_nodes: Sequence[str] | None = None) -> ExecutionResult:
    return ExecutionResult(success=True, data=data, next_nodes=next_nodes)


def error_result(error: str | BaseException) -> ExecutionResult:
    if isinstance(error, BaseException):
        message = str(error) or type(error).__name__
    else:
        message = str(error) or "error"
    return ExecutionResult(success=False, error=message)


def skipped_result(data: Any = None) -> ExecutionResult:
    return ExecutionResult(success=True, data=data, skipped=True)
