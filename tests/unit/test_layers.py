"""Layering checked by what an import loads: the planner is pure, records are neutral."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import {module}
print("\\n".join(sorted(m for m in sys.modules if m.startswith("spane_py."))))
"""


def loaded_by(module: str) -> set[str]:
    """The spane_py modules a fresh interpreter has loaded after importing ``module``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["spane_py.engine.planner", "spane_py.records"])
def test_the_planner_and_the_records_load_no_store_and_no_queue(module: str) -> None:
    loaded = loaded_by(module)
    assert module in loaded
    below = sorted(m for m in loaded if m.startswith(("spane_py.stores", "spane_py.queue")))
    assert below == []


def test_importing_the_package_loads_only_what_its_errors_need() -> None:
    assert loaded_by("spane_py") == {"spane_py.errors"}


def test_the_built_in_node_types_do_not_import_the_runner() -> None:
    loaded = loaded_by("spane_py.engine.builtin_nodes")
    assert "spane_py.engine.attempt" in loaded
    assert "spane_py.engine.runner" not in loaded


def test_the_queue_knows_jobs_not_workflows() -> None:
    loaded = loaded_by("spane_py.queue.worker")
    assert "spane_py.queue.client" in loaded
    above = sorted(m for m in loaded if m.startswith(("spane_py.engine", "spane_py.stores")))
    assert above == []


def test_each_built_in_type_is_one_module_in_the_table() -> None:
    from spane_py.definitions.builtin_configs import DELAY, MAP, SUB_WORKFLOW, WAIT
    from spane_py.engine.builtin_nodes import INLINE_TYPES, SUSPENDING_TYPES

    suspending = {t.name: t.waits_for for t in SUSPENDING_TYPES}
    assert suspending == {DELAY: "timer", SUB_WORKFLOW: "child", WAIT: "event"}
    assert [t.name for t in INLINE_TYPES] == [MAP]
    modules = {t.__module__ for t in (*SUSPENDING_TYPES, *INLINE_TYPES)}
    assert len(modules) == 4  # one module each
