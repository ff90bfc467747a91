"""Where the CPU of a node goes: this process, PostgreSQL, Redis; statements per node.

    python benchmarks/cpu_split.py [--store memory|postgres|both] [--runs 3] [--executions 1000]
                                   [--event-history on|off]

For each store, ``--runs`` runs of the diamond workload (diamond.py: ``--executions``
executions of a -> b, c, d -> e, started with one ``enqueue_workflow`` call at a time, then
awaited one after another — ``--wait all``: all at once; one in-process worker at concurrency
50). Over each run's window only (from the
first enqueue to the last completion) it measures:

- this process's CPU (``time.process_time``: the engine, its worker and the producer);
- the PostgreSQL server's CPU: the postmaster's process tree (psutil; user + system of the
  postmaster, its children, and the children it has reaped). Every session of the server
  counts, not only ours, and so do its background processes (WAL writer, checkpointer);
  "our backends" is the part of the sessions that served this process's pool;
- redis-server's CPU (psutil, its process and reaped children): by default a private
  redis-server that serves only this script (the embedded one, unix socket, as
  redis_cost.py); ``--redis local`` uses ``$REDIS_URL`` and the server listening on its port;
- the statements this process sent to PostgreSQL, counted exactly by wrapping asyncpg's
  ``Connection`` in this process (BEGIN / COMMIT / ROLLBACK included, as
  ``pg_stat_statements`` would count them; that extension needs a server restart with
  ``shared_preload_libraries``, which a shared server cannot be asked for; spane_py itself
  is not changed), and the transactions among them (a statement sent outside a
  transaction block is one, a block is one);
- the machine's busy CPU (all of it, ``/proc/stat``), so that the part used by others
  shows: on a shared machine the figures are only as good as the machine is quiet.

Then this process's VmRSS after the runs, the VmRSS of a fresh worker process (a child that
builds its engine on the same store as ``spane worker`` would, starts a worker at
concurrency 50 and runs one diamond), and the median time per hop of a 100-node chain
(chain.py's workflow and loop, ``--chain-runs`` runs). ``--breakdown``: statements per node
by statement text. ``--event-history on`` runs the engine with its event history
(``WorkflowEngine(event_history=True)``), to see what recording the events costs.

The PostgreSQL store needs ``$DATABASE_URL`` pointing at a server on this machine (its
processes are read with psutil); the schema ``spane_bench_cpu_split`` is dropped and
migrated afresh, and dropped at the end. Goals (issue 13) are printed beside the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _common
import psutil
from _common import fresh_bench_schema, machine, make_engine, noop
from chain import per_hop_ms
from diamond import DIAMOND

import spane_py
from spane_py import NodeRegistry, WorkflowEngine
from spane_py.embedded import EmbeddedRedis

# A schema of its own (make_engine and fresh_bench_schema read this name when called): a
# diamond.py or redis_cost.py run beside it drops theirs when it starts.
_common.BENCH_SCHEMA = "spane_bench_cpu_split"

CONCURRENCY = 50  # diamond.py's default
CHAIN_NODES = 100
CHAIN_CONCURRENCY = 10  # chain.py's

# Goals of issue 13: (memory, postgres); None where the issue sets none.
GOALS: dict[str, tuple[str | None, str | None]] = {
    "nodes/s": (">= 4,000", ">= 1,500"),
    "process CPU, us/node": ("<= 250", "<= 400"),
    "PostgreSQL server CPU, us/node": (None, "<= 250"),
    "statements/node": (None, "<= 0.5"),
    "chain, ms/hop (median)": ("<= 0.6", "<= 2"),
    "RSS after the runs, MiB": ("<= 60", "<= 60"),
    "fresh worker RSS, MiB": ("<= 60", "<= 60"),
}


# --- counters -------------------------------------------------------------------------


def tree_cpu(root: psutil.Process | None) -> dict[int, float]:
    """CPU seconds by pid of ``root`` and its descendants; a process's reaped children are
    added to its own figure, so that a backend that ended in the window still counts."""
    if root is None:
        return {}
    out: dict[int, float] = {}
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = t.user + t.system + t.children_user + t.children_system
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """Seconds spent between two ``tree_cpu`` readings (a process new since counts whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def vm_rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class StatementCounter:
    """Statements sent by this process's asyncpg connections, and their server pids."""

    total: int = 0
    transactions: int = 0
    by_query: collections.Counter[str] = field(default_factory=collections.Counter)
    backends: set[int] = field(default_factory=set)

    def note(self, conn: Any, query: str) -> None:
        self.total += 1
        if not conn.is_in_transaction():  # BEGIN, or a statement on its own
            self.transactions += 1
        self.by_query[query] += 1
        self.backends.add(conn.get_server_pid())

    def install(self) -> None:
        """Wrap ``asyncpg.Connection``: ``_do_execute`` carries every statement sent with
        the extended protocol (fetch*, execute with arguments, executemany; a statement
        asyncpg re-sends after a stale cache is counted twice, as the server runs it
        twice); ``execute`` without arguments (BEGIN, COMMIT, ROLLBACK) goes around it."""
        from asyncpg.connection import Connection

        do_execute: Callable[..., Awaitable[Any]] = Connection._do_execute
        execute: Callable[..., Awaitable[Any]] = Connection.execute

        async def counted_do_execute(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            self.note(conn, query)
            return await do_execute(conn, query, *args, **kwargs)

        async def counted_execute(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not args:
                self.note(conn, query)
            return await execute(conn, query, *args, **kwargs)

        setattr(Connection, "_do_execute", counted_do_execute)  # noqa: B010
        setattr(Connection, "execute", counted_execute)  # noqa: B010


def machine_busy() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine so far, from /proc/stat."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    steal = getattr(t, "steal", 0.0)
    total = sum(t)
    return total - idle - steal, steal, total


async def find_postmaster(url: str) -> psutil.Process:
    """The local PostgreSQL server's postmaster: the parent of a backend of ours."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        postmaster = psutil.Process(backend).parent()
    except psutil.NoSuchProcess:
        postmaster = None
    finally:
        await conn.close()
    if postmaster is None:
        raise SystemExit(
            f"PostgreSQL at {urlsplit(url).hostname} is not a server on this machine "
            "(its backend process is not visible): its CPU cannot be read"
        )
    return postmaster


def redis_process(private: EmbeddedRedis | None) -> psutil.Process:
    if private is not None:
        assert private.pid is not None
        return psutil.Process(private.pid)
    port = urlsplit(os.environ["REDIS_URL"]).port or 6379
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    raise SystemExit(f"no process listens on port {port} (is it visible to this user?)")


# --- one store ------------------------------------------------------------------------


@dataclass
class Run:
    rate: float
    process_us: float
    redis_us: float
    machine_pct: float  # of all cores, busy, over the window
    steal_pct: float
    others_us: float  # machine busy CPU not accounted to this process, PostgreSQL, Redis
    pg_us: float | None = None
    pg_ours_us: float | None = None
    statements: float | None = None
    transactions: float | None = None


WAITS = {"each": "one by one", "all": "together"}


async def measure_run(
    engine: WorkflowEngine,
    executions: int,
    redis: psutil.Process,
    pg: psutil.Process | None,
    counter: StatementCounter,
    wait: str = "each",
) -> Run:
    await asyncio.sleep(0.3)  # what the previous run left in flight settles
    pg0 = tree_cpu(pg)
    ours0 = {p: c for p, c in pg0.items() if p in counter.backends}
    redis0 = tree_cpu(redis)
    busy0, steal0, total0 = machine_busy()
    statements0, transactions0 = counter.total, counter.transactions
    cpu0 = time.process_time()
    t0 = time.perf_counter()

    ids = [await engine.enqueue_workflow("diamond", {"x": i}) for i in range(executions)]
    if wait == "each":
        states = [await engine.wait_for_execution(i, timeout=600) for i in ids]
    else:  # all at once: their store reads go out together
        states = await asyncio.gather(*(engine.wait_for_execution(i, timeout=600) for i in ids))

    elapsed = time.perf_counter() - t0
    cpu1 = time.process_time()
    statements1, transactions1 = counter.total, counter.transactions
    busy1, steal1, total1 = machine_busy()
    redis1 = tree_cpu(redis)
    pg1 = tree_cpu(pg)
    assert all(s.status == "completed" for s in states), "an execution did not complete"

    nodes = executions * 5
    process = cpu1 - cpu0
    redis_s = cpu_delta(redis0, redis1)
    pg_s = cpu_delta(pg0, pg1)
    run = Run(
        rate=nodes / elapsed,
        process_us=process / nodes * 1e6,
        redis_us=redis_s / nodes * 1e6,
        machine_pct=(busy1 - busy0) / (total1 - total0) * 100,
        steal_pct=(steal1 - steal0) / (total1 - total0) * 100,
        others_us=max(0.0, (busy1 - busy0) - process - redis_s - pg_s) / nodes * 1e6,
    )
    if pg:
        ours1 = {p: c for p, c in pg1.items() if p in counter.backends}
        run.pg_us = pg_s / nodes * 1e6
        run.pg_ours_us = cpu_delta(ours0, ours1) / nodes * 1e6
        run.statements = (statements1 - statements0) / nodes
        run.transactions = (transactions1 - transactions0) / nodes
    return run


def print_run(i: int, r: Run) -> None:
    pg = (
        f"; PostgreSQL {r.pg_us:.0f} us (our backends {r.pg_ours_us:.0f}); "
        f"{r.statements:.2f} statements, {r.transactions:.2f} transactions"
        if r.pg_us is not None
        else ""
    )
    print(
        f"  run {i}: {r.rate:,.0f} nodes/s; per node: process {r.process_us:.0f} us, "
        f"Redis {r.redis_us:.0f} us{pg}; machine {r.machine_pct:.0f}% busy "
        f"(steal {r.steal_pct:.0f}%), others {r.others_us:.0f} us/node",
        flush=True,
    )


async def chain_per_hop(store: str, runs: int) -> list[float]:
    """chain.py's measurement: one execution of a 100-node chain at a time."""
    return await per_hop_ms(CHAIN_NODES, runs, store, CHAIN_CONCURRENCY)


def fresh_worker_rss(store: str) -> float | None:
    """VmRSS of a child process that started a worker on ``store`` and ran one diamond
    (the PostgreSQL schema must be migrated: the child does not migrate it)."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--fresh-worker", store],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  fresh worker failed (rc {proc.returncode}): {proc.stderr[-500:]}")
        return None
    return float(json.loads(lines[-1])["rss_mib"])


async def fresh_worker(store: str) -> None:
    """The child of ``fresh_worker_rss``. Its PostgreSQL store is built as a deployed
    worker's (``spane worker`` with ``$DATABASE_URL``): the schema is migrated already
    (by the parent) and the store only checks it, where make_engine's would migrate."""
    registry = NodeRegistry()
    registry.register("noop", noop)
    if store == "postgres":
        from spane_py.stores.postgres.store import PostgresExecutionStore

        engine = WorkflowEngine(
            registry,
            PostgresExecutionStore(schema=_common.BENCH_SCHEMA),
            redis_url=os.environ["REDIS_URL"],
            key_prefix=f"fresh{os.getpid()}",
        )
    else:
        engine = make_engine(registry, store_kind="memory")
    async with engine:
        await engine.register_workflow(DIAMOND)
        await engine.start_workers(CONCURRENCY)
        await engine.run_workflow("diamond", {"x": 0}, timeout=60)
        await asyncio.sleep(1.0)
        print(json.dumps({"rss_mib": vm_rss_mib()}), flush=True)
        await engine.purge()
    await engine.store.close()


async def measure_store(
    store: str,
    args: argparse.Namespace,
    redis: psutil.Process,
    counter: StatementCounter,
) -> dict[str, float | None]:
    print(f"\n{store} store", flush=True)
    pg: psutil.Process | None = None
    if store == "postgres":
        pg = await find_postmaster(os.environ["DATABASE_URL"])
        await fresh_bench_schema()
    registry = NodeRegistry()
    registry.register("noop", noop)
    runs: list[Run] = []
    counter.by_query.clear()
    async with make_engine(
        registry,
        max_executions=args.executions * (args.runs + 1) + 10,
        store_kind=store,
        event_history=args.event_history == "on",
    ) as engine:
        await engine.register_workflow(DIAMOND)
        await engine.start_workers(CONCURRENCY)
        await engine.run_workflow("diamond", {"x": 1}, timeout=60)  # warm-up
        counter.by_query.clear()
        for i in range(args.runs):
            runs.append(await measure_run(engine, args.executions, redis, pg, counter, args.wait))
            print_run(i + 1, runs[-1])
        rss = vm_rss_mib()
        await engine.purge()
    await engine.store.close()
    if pg is not None and args.breakdown:
        nodes = args.executions * 5 * args.runs
        print("  statements per node, by statement:")
        width = int(os.environ.get("BREAKDOWN_WIDTH", "90"))  # characters of each statement
        for query, n in counter.by_query.most_common(12):
            print(f"    {n / nodes:6.3f}  {' '.join(query.split())[:width]}")
    hops = await chain_per_hop(store, args.chain_runs)
    print(
        f"  chain of {CHAIN_NODES}: per hop median {statistics.median(hops):.2f} ms "
        f"(runs {min(hops):.2f}-{max(hops):.2f})",
        flush=True,
    )
    fresh = fresh_worker_rss(store)
    if store == "postgres":
        await fresh_bench_schema()

    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return {
        "nodes/s": med([r.rate for r in runs]),
        "process CPU, us/node": med([r.process_us for r in runs]),
        "PostgreSQL server CPU, us/node": med([r.pg_us for r in runs]),
        "  of it, our backends": med([r.pg_ours_us for r in runs]),
        "Redis CPU, us/node": med([r.redis_us for r in runs]),
        "statements/node": med([r.statements for r in runs]),
        "  transactions/node": med([r.transactions for r in runs]),
        "others' CPU, us/node": med([r.others_us for r in runs]),
        "machine busy, %": med([r.machine_pct for r in runs]),
        "chain, ms/hop (median)": statistics.median(hops),
        "RSS after the runs, MiB": rss,
        "fresh worker RSS, MiB": fresh,
    }


# --- report ---------------------------------------------------------------------------


def fmt(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name == "nodes/s":
        return f"{value:,.0f}"
    if "statements" in name or "transactions" in name or "ms/hop" in name:
        return f"{value:.2f}"
    if "MiB" in name:
        return f"{value:.1f}"
    return f"{value:.0f}"


def print_table(results: dict[str, dict[str, float | None]]) -> None:
    stores = list(results)
    names = list(next(iter(results.values())))
    head = ["median of the runs", *(f"{s}" for s in stores), *(f"goal, {s}" for s in stores)]
    rows = [head]
    for name in names:
        goals = GOALS.get(name, (None, None))
        row = [name, *(fmt(name, results[s][name]) for s in stores)]
        row += [(goals[0] if s == "memory" else goals[1]) or "" for s in stores]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print()
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  " + " | ".join(cells))
        if j == 0:
            print("  " + "-+-".join("-" * w for w in widths))


def code_version() -> str:
    where = Path(spane_py.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "spane_py"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no git"
    return f"commit {commit}" + (", spane_py/ changed since" if dirty else "")


async def main(args: argparse.Namespace) -> None:
    stores = ["memory", "postgres"] if args.store == "both" else [args.store]
    if "postgres" in stores and not os.environ.get("DATABASE_URL"):
        raise SystemExit("the PostgreSQL store needs $DATABASE_URL (a server on this machine)")
    private: EmbeddedRedis | None = None
    if args.redis == "private":
        private = EmbeddedRedis()
        # make_engine reads $REDIS_URL: point it (and the fresh-worker child) at ours.
        os.environ["REDIS_URL"] = await private.astart()
    elif not os.environ.get("REDIS_URL"):
        raise SystemExit("--redis local needs $REDIS_URL")
    counter = StatementCounter()
    counter.install()
    try:
        redis = redis_process(private)
        print(f"spane_py: {spane_py.__file__} ({code_version()})")
        print(
            f"{args.executions} diamonds x 5 nodes per run, {args.runs} runs per store, one "
            f"enqueue_workflow at a time, awaited {WAITS[args.wait]}, one in-process worker at "
            f"concurrency {CONCURRENCY}, event history {args.event_history}; "
            f"{machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        print(
            "Redis: "
            + (
                "a private redis-server (embedded, unix socket)"
                if private
                else f"$REDIS_URL, redis-server pid {redis.pid}"
            )
            + (
                f"; PostgreSQL: $DATABASE_URL ({urlsplit(os.environ['DATABASE_URL']).hostname}), "
                "its whole process tree (other sessions' work counts too)"
                if "postgres" in stores
                else ""
            )
        )
        results: dict[str, dict[str, float | None]] = {}
        for store in stores:
            results[store] = await measure_store(store, args, redis, counter)
        print_table(results)
        print(
            f"  (load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
            "'others' = the machine's busy CPU less this process, PostgreSQL and Redis)"
        )
    finally:
        if private is not None:
            await asyncio.to_thread(private.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["memory", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--chain-runs", type=int, default=5)
    parser.add_argument(
        "--redis",
        choices=["private", "local"],
        default="private",
        help="a private redis-server (default), or $REDIS_URL's on this machine",
    )
    parser.add_argument("--breakdown", action="store_true", help="statements by text")
    parser.add_argument(
        "--wait",
        choices=["each", "all"],
        default="each",
        help="await the executions one after another (each: a store read apiece) or all at "
        "once (all: the reads go out together, so the statements are mostly the engine's)",
    )
    parser.add_argument(
        "--event-history",
        choices=["on", "off"],
        default="off",
        help="record the engine's events in the store (on), or not (the engine's default)",
    )
    parser.add_argument("--fresh-worker", choices=["memory", "postgres"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh_worker:
        asyncio.run(fresh_worker(args.fresh_worker))
    else:
        asyncio.run(main(args))
