"""The public API is exactly ``spane_py.__all__`` (httpx's exported-members test)."""

from __future__ import annotations

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
