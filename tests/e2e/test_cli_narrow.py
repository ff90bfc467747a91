"""``spane executions``, ``trace`` and ``dlq`` in an 80-column terminal: ids stay whole,
names wrap instead of being cut, the Gantt bars fill the width without an ellipsis, and
an execution is named by any unique prefix of its id. The tests read what one ``spane
demo`` left in a schema of this module's."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Run, delete_keys, pg_env, run_process


@dataclass(frozen=True)
class Demo:
    env: dict[str, str]  # COLUMNS=80
    ids: list[str]  # newest first
    schema: str


async def _sql(database_url: str, query: str, *rows: tuple[str, ...]) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        if rows:
            await conn.executemany(query, rows)
        else:
            await conn.execute(query)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def demo(database_url: str, redis_url: str) -> Iterator[Demo]:
    """Three executions of the demo, in a schema and under a key prefix of this module's
    (the tests only read them, but for the dead letters one adds)."""
    schema, prefix = f"t_{uuid.uuid4().hex[:12]}", f"t{uuid.uuid4().hex[:12]}"
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("SPANE_")
    }
    env.update(REDIS_URL=redis_url, SPANE_KEY_PREFIX=prefix, PYTHONIOENCODING="utf-8")
    env = {**pg_env(env, database_url, schema), "COLUMNS": "80"}
    cli = [sys.executable, "-m", "spane_py.cli"]
    try:
        ran = run_process([*cli, "demo", "--store", "postgres", "-n", "3", "--show", "0"],
                          env=env, timeout=120)  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        listed = run_process([*cli, "executions", "list", "--json"], env=env)
        assert listed.returncode == 0, listed.stderr
        ids = [row["execution_id"] for row in json.loads(listed.stdout)]
        assert len(ids) == 3
        yield Demo(env, ids, schema)
    finally:
        asyncio.run(_sql(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        delete_keys(redis_url, f"{prefix}:*", f"arq:*:{prefix}:*", f"{prefix}-demo-*")


def table_rows(out: str) -> list[dict[str, str]]:
    """The rows of the first table in ``out``: the columns start where the words of the
    header line (the one above the rule) start; a line whose first column is blank
    continues the row above, each wrapped cell's lines joined without a separator."""
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    header = [(m.group(), m.start()) for m in re.finditer(r"\S+", lines[rule - 1])]
    bounds = [(name, start, nxt[1] if nxt else None) for (name, start), nxt in
              zip(header, [*header[1:], None], strict=True)]  # fmt: skip
    rows: list[dict[str, str]] = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        cells = {name: line[start:end].strip() for name, start, end in bounds}
        if cells[header[0][0]]:
            rows.append(cells)
        else:
            for name, text in cells.items():
                rows[-1][name] += text
    return rows


def assert_fits(out: str, width: int = 80) -> None:
    """No line wider than ``width``; no cell cut short (``…``) below the header."""
    assert out.strip()
    for line in out.splitlines():
        assert len(line.rstrip()) <= width, f"{len(line.rstrip())} columns: {line!r}"
    body = out.split("─" * 10, 1)[-1]  # the trace's axis header reads "0 … 98 ms"
    assert "…" not in body
    assert "..." not in body


def unique_prefix(execution_id: str, others: list[str]) -> str:
    """The shortest prefix of ``execution_id`` that no other id starts with."""
    for n in range(1, len(execution_id) + 1):
        if not any(o.startswith(execution_id[:n]) for o in others if o != execution_id):
            return execution_id[:n]
    raise AssertionError(execution_id)


def test_executions_list_keeps_ids_whole_at_80_columns(spane: Run, demo: Demo) -> None:
    table = spane("executions", "list", env=demo.env)
    assert table.returncode == 0, table.stderr
    assert_fits(table.stdout)
    for execution_id in demo.ids:
        assert execution_id in table.stdout  # whole, on one line
    rows = table_rows(table.stdout)
    assert [r["execution"] for r in rows] == demo.ids
    assert {r["workflow"].replace(" ", "") for r in rows} == {"order-reviewv1"}  # wrapped
    assert {r["status"] for r in rows} == {"completed"}


def test_a_unique_prefix_names_the_execution(spane: Run, demo: Demo) -> None:
    first, last = demo.ids[0], demo.ids[-1]
    prefix = unique_prefix(first, demo.ids)
    assert len(prefix) < len(first)
    shown = spane("executions", "show", prefix, env=demo.env)
    assert shown.returncode == 0, shown.stderr
    assert f"execution {first}" in shown.stdout
    prefix = unique_prefix(last, demo.ids)
    traced = spane("trace", prefix.upper(), "--json", env=demo.env)  # either case
    assert traced.returncode == 0, traced.stderr
    assert json.loads(traced.stdout)["execution"]["execution_id"] == last


def test_an_ambiguous_prefix_lists_the_executions(spane: Run, demo: Demo) -> None:
    shared = os.path.commonprefix(demo.ids)  # noqa: RUF071 (ids minted in one run share a start)
    assert shared
    for command in (("executions", "show"), ("trace",)):
        refused = spane(*command, shared, env=demo.env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stdout == ""
        assert f"error: {shared!r} is the start of more than one execution id" in refused.stderr
        for execution_id in demo.ids:
            assert execution_id in refused.stderr

    unknown = spane("executions", "show", "ffff", env=demo.env)
    assert unknown.returncode == 1
    assert "no execution has an id that starts with 'ffff'" in unknown.stderr
    for bad in ("0%", ""):
        refused = spane("trace", bad, env=demo.env)
        assert refused.returncode in (1, 2), refused.stderr
        assert refused.stderr.startswith("error: "), refused.stderr


BAR = re.compile(r"[█·]{10,}|[#.]{10,}")


def bars(out: str) -> list[str]:
    found = [m.group() for line in out.splitlines() if (m := BAR.search(line))]
    assert found, out
    return found


def test_trace_bars_fit_the_terminal_without_ellipsis(spane: Run, demo: Demo) -> None:
    narrow = spane("trace", demo.ids[0], env=demo.env)
    assert narrow.returncode == 0, narrow.stderr
    assert_fits(narrow.stdout)
    at_80 = bars(narrow.stdout)
    assert len({len(b) for b in at_80}) == 1  # every bar the same width: none cut
    assert len(at_80[0]) >= 40  # what the other columns leave of 80
    assert len(at_80) >= 6  # a bar per node attempt (the demo runs six nodes)

    wide = spane("trace", demo.ids[0], env={**demo.env, "COLUMNS": "160"})
    assert_fits(wide.stdout, 160)
    assert len(bars(wide.stdout)[0]) == len(at_80[0]) + 80  # the bars take the extra width

    chosen = spane("trace", demo.ids[0], "--width", "30", env=demo.env)
    assert {len(b) for b in bars(chosen.stdout)} == {30}


@pytest.fixture
def dead_letters(demo: Demo, database_url: str) -> list[tuple[str, ...]]:
    rows = [
        (
            demo.ids[0],
            "quarterly-revenue-reconciliation",
            "send-the-confirmation-email-to-the-customer",
            "TimeoutError: the gateway did not answer in 30 s",
        ),
        (demo.ids[1], "order-review", "approve", "ValueError: no approver"),
    ]
    insert = (
        f'INSERT INTO "{demo.schema}".dlq_items (execution_id, workflow_id, node_id, job, '
        "error, attempts) VALUES ($1, $2, $3, '{}'::jsonb, $4, 3)"
    )
    asyncio.run(_sql(database_url, insert, *rows))
    return rows


def test_dlq_list_keeps_names_whole(
    spane: Run, demo: Demo, dead_letters: list[tuple[str, ...]]
) -> None:
    narrow = spane("dlq", "list", env=demo.env)
    assert narrow.returncode == 0, narrow.stderr
    assert_fits(narrow.stdout)
    rows = table_rows(narrow.stdout)
    newest_first = list(reversed(dead_letters))
    assert [(r["workflow"], r["node"], r["execution"]) for r in rows] == [
        (workflow, node, execution_id) for execution_id, workflow, node, _ in newest_first
    ]
    for execution_id, *_ in dead_letters:
        assert execution_id in narrow.stdout  # on one line
    # No room for an error column at 80: the errors follow the table, after the item's id.
    for row, (_, _, _, error) in zip(rows, newest_first, strict=True):
        assert f"#{row['id']}  {error}" in narrow.stdout

    wide = spane("dlq", "list", env={**demo.env, "COLUMNS": "200"})
    assert_fits(wide.stdout, 200)
    for execution_id, workflow, node, error in dead_letters:
        line = next(line for line in wide.stdout.splitlines() if execution_id in line)
        assert workflow in line
        assert node in line
        assert error in line  # an error column: it fits


def test_help_shows_no_type_on_flags(spane: Run, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "COLUMNS": "80"}
    for command in ((), ("worker",), ("db", "upgrade"), ("executions", "list")):
        shown = spane(*command, "--help", env=env, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert "--help" in shown.stdout
        assert "<bool>" not in shown.stdout, command
