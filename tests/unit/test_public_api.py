"""The public API is exactly ``spane_py.__all__`` (httpx's exported-members test)."""

from __future__ import annotations

import inspect
import sys
import typing

import spane_py


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(spane_py) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(spane_py, name)).__name__ == "module"}
    lazy = set(spane_py._LAZY)  # imported on first use (they need an extra)
    assert set(spane_py.__all__) - {"__version__"} == (public - modules) | lazy


def test_every_exported_name_resolves() -> None:
    for name in spane_py.__all__:
        assert getattr(spane_py, name) is not None


def test_errors_share_one_root() -> None:
    errors = [
        getattr(spane_py, n)
        for n in spane_py.__all__
        if isinstance(getattr(spane_py, n), type) and n.endswith("Error")
    ]
    assert errors
    for error in errors:
        assert issubclass(error, spane_py.SpaneError), error


def _classes_in(hint: object) -> set[type]:
    """The classes a type hint names (``list[X]``, ``X | None`` and the like unwrapped)."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return {hint}
    found: set[type] = set()
    for arg in typing.get_args(hint):
        found |= _classes_in(arg)
    origin = typing.get_origin(hint)
    if isinstance(origin, type) and origin.__module__ != "builtins":
        found.add(origin)
    return found


def test_every_type_a_public_engine_method_returns_is_exported() -> None:
    import spane_py.dsl  # the annotations name Workflow

    missing = set()
    for name, method in inspect.getmembers(spane_py.WorkflowEngine, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(
            method, vars(sys.modules[method.__module__]) | vars(spane_py.dsl)
        )
        for cls in _classes_in(hints.get("return")):
            if cls.__module__.startswith("spane_py") and cls.__name__ not in spane_py.__all__:
                missing.add(f"{name} -> {cls.__module__}.{cls.__name__}")
    assert not missing, sorted(missing)
