"""The ``spane`` command.

    spane demo [--executions N] [--store memory|postgres]
                                         run the bundled workflow end to end (zero setup)
    spane worker APP [--concurrency N] [--threads N] [--queues Q,...] [--burst]
                     [--store memory|postgres] [--metrics-port PORT]
                                         run a worker for the engine APP names
    spane run APP WORKFLOW_ID [--data JSON] [--timeout S] [--json] [--store ...]
                                         run one execution on an in-process worker
    spane api [--app APP] [--host H] [--port P] [--worker-concurrency N] [--store ...]
                                         serve the HTTP API and the dashboard
    spane db upgrade [--schema S] [--database-url URL] [--sql]
                                         apply the PostgreSQL migrations (safe to run
                                         from several processes at once)
    spane db current [--schema S] [--database-url URL]
                                         print the database's revision and the code's
                                         (exit code 1 when they differ)
    spane executions list|show, spane trace ID, spane dlq list|retry
                                         what ran, from the store (see cli_inspect)
    spane executions pause|resume|cancel|retry|replay ID... | --workflow W --status S [--yes]
                                         control executions (see cli_control)
    spane tokens list|resume|revoke, spane workflows list|show|versions,
    spane schedules list|pause|resume    resume tokens, workflows and schedules (cli_control)
    spane queues, spane workers          the queues and the live workers, from Redis
                                         (see cli_ops)
    spane events, spane artifacts list|get
                                         the event history and artifacts (see cli_data)
    spane --version

``APP`` is ``module:attribute`` naming a ``WorkflowEngine``, or a function (sync or async)
that returns one; the current directory is importable, as with ``python -m``. The
environment is read here and nowhere else in the package: ``REDIS_URL``, ``DATABASE_URL``
and the ``SPANE_*`` variables of ``spane_py.settings``.

``--store`` (else ``SPANE_STORE``, else ``postgres`` when ``DATABASE_URL`` is set, else
``memory``) picks the store. ``spane worker`` and ``spane run`` export it as ``SPANE_STORE``
before importing APP, whose engine honours it when built with
``SpaneSettings().engine_kwargs()``; they never migrate a database (``spane db upgrade``
does), while ``spane demo`` migrates its schema. PostgreSQL without ``DATABASE_URL`` is the
embedded server in ``.spane/pg``.

``spane db`` (cli_db.py) uses ``--database-url``, else ``DATABASE_URL``, else the embedded
PostgreSQL in ``.spane/pg``; the schema is ``--schema``, else ``SPANE_DB_SCHEMA``, else
``spane``.

Exit codes: 0 success; 1 an execution did not complete, or Redis or PostgreSQL could not be
reached, or its schema is not at this code's revision; 2 a usage error (bad APP, bad
``--data``, unknown workflow, bad database URL or schema name, a missing extra).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

import typer
from rich.console import Console

from spane_py import __version__, cli_control, cli_data, cli_db, cli_inspect, cli_ops, cli_registry
from spane_py._cli_support import (
    NOT_COMPLETED,
    AppError,
    SpaneCommand,
    SpaneGroup,
    StoreOption,
    fail,
    load_app,
    load_settings,
    print_json,
    resolve_engine,
    setup_logging,
    stderr,
)
from spane_py._queue_names import check_queue_name
from spane_py.demo import render_execution, run_demo, unicode_ok
from spane_py.engine import threads as node_threads
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import (
    ConfigurationError,
    ExecutionWaitTimeoutError,
    SpaneError,
    StatePersistenceError,
    WorkflowNotFoundError,
)
from spane_py.settings import SpaneSettings
from spane_py.state import ExecutionState, ExecutionStatus

app = typer.Typer(
    name="spane",
    help="spane_py: DAG workflows on arq workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=SpaneGroup,
)

logger = logging.getLogger("spane_py.cli")


async def _engine_for(path: str) -> WorkflowEngine:
    obj = load_app(path)
    return await resolve_engine(obj, path)


def _check_engine_store(engine: WorkflowEngine, path: str, settings: SpaneSettings) -> None:
    if engine.store.shared:
        return
    if settings.store_kind == "postgres":
        logger.warning(
            "the engine of %s uses the in-memory store although the settings ask for "
            "postgres (--store, SPANE_STORE or DATABASE_URL): build it with "
            "WorkflowEngine(registry, **SpaneSettings().engine_kwargs())",
            path,
        )
    else:
        logger.warning(
            "the engine of %s uses the in-memory store: this worker only sees executions "
            "enqueued in its own process",
            path,
        )


async def _start(engine: WorkflowEngine) -> None:
    try:  # the store first (idempotent), so that its failures are not blamed on Redis
        await engine.store.start()
    except SpaneError:
        raise
    except Exception as exc:
        raise StatePersistenceError(
            f"the store did not start: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        await engine.start()
    except SpaneError:
        raise
    except Exception as exc:
        where = engine.redis_url or "the embedded server"
        raise ConfigurationError(
            f"cannot connect to Redis at {where}: {type(exc).__name__}: {exc}"
        ) from exc


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"spane {__version__}")
        raise typer.Exit()


# Commands --------------------------------------------------------------------------


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """spane_py: DAG workflows on arq workers."""


@app.command(cls=SpaneCommand)
def demo(
    executions: Annotated[
        int, typer.Option("--executions", "-n", min=1, max=100_000, help="How many to run.")
    ] = 1,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Worker concurrency (default: SPANE_CONCURRENCY, else 10)."),
    ] = None,
    show: Annotated[int, typer.Option(min=0, help="Print the trees of this many.")] = 3,
    store: StoreOption = None,
) -> None:
    """Run the bundled demo workflow end to end (zero setup).

    The order-review workflow has a fan-out, a fan-in, a branch and a join. Without
    REDIS_URL an embedded Redis is started. The store is in memory unless --store postgres
    (or DATABASE_URL) says otherwise; the demo migrates the PostgreSQL schema it uses."""
    settings = load_settings(store)
    setup_logging("WARNING")
    console = Console(highlight=False)
    try:
        ok = asyncio.run(
            run_demo(
                console,
                executions=executions,
                concurrency=concurrency or settings.concurrency,
                show=show,
                settings=settings,
            )
        )
    except (SpaneError, TimeoutError) as exc:
        fail(str(exc), NOT_COMPLETED)
    raise typer.Exit(0 if ok else NOT_COMPLETED)


def _queue_list(text: str | None) -> list[str] | None:
    """``--queues a,b``: the names, checked; None when not given."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        fail(f"--queues {text!r} names no queue")
    for name in names:
        try:
            check_queue_name(name)
        except ValueError as exc:
            fail(f"--queues: {exc}")
    return names


@app.command(cls=SpaneCommand)
def worker(
    app_path: Annotated[
        str, typer.Argument(metavar="APP", help="module:attribute naming the engine")
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, help="Jobs run at once (default: SPANE_CONCURRENCY, else 10)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Threads that run plain def node executors (default: min(32, CPUs + 4)).",
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            help="Comma-separated queues to consume (default: SPANE_QUEUES, else every queue "
            "the app's node types and workflows run on).",
        ),
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="Exit once the queue is empty.")] = False,
    store: StoreOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Serve Prometheus metrics on this port at /metrics (default: "
            "SPANE_METRICS_PORT, else none; 0: any free port).",
        ),
    ] = None,
) -> None:
    """Run a worker for the engine APP (module:attribute) names.

    It runs until SIGINT/SIGTERM, or with --burst until nothing is queued. It never migrates
    the database: run `spane db upgrade` first. Plain `def` node executors run on a pool of
    --threads threads, async ones on the event loop. It takes jobs only from --queues."""
    settings = load_settings(store, export=True)
    setup_logging(settings.log_level)
    jobs = concurrency or settings.concurrency
    if threads is not None:
        node_threads.configure(threads)
    lanes = _queue_list(queues if queues is not None else settings.queues)

    async def main() -> None:
        engine = await _engine_for(app_path)
        try:
            await _start(engine)
            _check_engine_store(engine, app_path, settings)
            port = metrics_port if metrics_port is not None else settings.metrics_port
            if port is not None:
                served = await engine.serve_metrics(port, settings.metrics_addr)
                logger.info("spane worker %s: metrics on port %d", app_path, served)
            logger.info("spane worker %s: store %s", app_path, engine.store.describe())
            logger.info(
                "spane worker %s: key prefix %r, concurrency %d%s",
                app_path,
                engine.key_prefix,
                jobs,
                ", burst" if burst else "",
            )
            consumed = lanes if lanes is not None else engine.default_queues()
            logger.info("spane worker %s: queues %s", app_path, ", ".join(consumed))
            await engine.run_worker(jobs, burst=burst, queues=consumed)
        finally:
            await engine.close()
        logger.info("spane worker %s stopped", app_path)

    try:
        asyncio.run(main())
    except AppError as exc:
        fail(str(exc))
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)


@app.command(cls=SpaneCommand)
def run(
    app_path: Annotated[
        str, typer.Argument(metavar="APP", help="module:attribute naming the engine")
    ],
    workflow_id: Annotated[
        str, typer.Argument(metavar="WORKFLOW_ID", help="The registered workflow to run.")
    ],
    data: Annotated[str | None, typer.Option("--data", help="Initial data, as JSON.")] = None,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds to wait for the execution.")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final state as JSON.")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="In-process worker concurrency (default: SPANE_CONCURRENCY, else 10)."
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Run one execution of WORKFLOW_ID on an in-process worker and print its result."""
    initial: Any = None
    if data is not None:
        try:
            initial = json.loads(data)
        except json.JSONDecodeError as exc:
            fail(f"--data is not valid JSON: {exc}")
    settings = load_settings(store, export=True)
    setup_logging("WARNING")
    console = Console(highlight=False)

    async def main() -> bool:
        engine = await _engine_for(app_path)
        grace = 5.0
        try:
            await _start(engine)
            if settings.store_kind == "postgres":
                _check_engine_store(engine, app_path, settings)
            execution_id = await engine.enqueue_workflow(workflow_id, initial)
            await engine.start_workers(concurrency or settings.concurrency)
            try:
                state = await _wait_with_progress(
                    engine, execution_id, timeout, show=not as_json and console.is_terminal
                )
            except ExecutionWaitTimeoutError:
                grace = 0.5  # abandoning it: a running node goes back to the queue
                state = await engine.get_execution(execution_id)
                if as_json:
                    print_json(state.model_dump(mode="json"))
                stderr().print(
                    f"[bold red]error:[/] execution {execution_id} is still "
                    f"{state.status.value} after {timeout:g} s"
                )
                return False
            if as_json:
                print_json(state.model_dump(mode="json"))
            else:
                definition = await engine.get_workflow(state.workflow_id, state.workflow_version)
                console.print(
                    render_execution(
                        state, definition, unicode=unicode_ok(console), width=console.width
                    )
                )
            return state.status == ExecutionStatus.COMPLETED
        finally:
            await engine.close(grace_seconds=grace)

    try:
        ok = asyncio.run(main())
    except AppError as exc:
        fail(str(exc))
    except WorkflowNotFoundError as exc:
        fail(
            f"{exc}; register it first: build APP's engine with "
            "WorkflowEngine(registry, workflows=[...]), which registers them when it starts "
            "(on PostgreSQL, any process sharing the database may have registered it)"
        )
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)
    raise typer.Exit(0 if ok else NOT_COMPLETED)


@app.command(cls=SpaneCommand)
def api(
    app_path: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="APP",
            help="module:attribute naming the engine (default: an engine with no executors, "
            "enough to watch and control executions)",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    worker_concurrency: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also run a worker in this process with this many jobs at once (0: none; "
            "the in-memory store needs one, no other process sees it).",
        ),
    ] = 0,
    store: StoreOption = None,
) -> None:
    """Serve the HTTP API (/api, OpenAPI at /openapi.json) and the dashboard (/).

    SPANE_API_TOKEN set: /api and /metrics need 'Authorization: Bearer <token>'. It never
    migrates the database: run `spane db upgrade` first."""
    settings = load_settings(store, export=True)
    setup_logging(settings.log_level)
    try:
        from spane_py.api import ApiSettings, create_app
        from spane_py.api.server import serve
    except ImportError as exc:
        fail(
            f"`spane api` needs the api extra ({exc.name or exc} is not installed): "
            "pip install 'spane-py[api]'"
        )

    async def main() -> None:
        if app_path is not None:
            engine = await _engine_for(app_path)
        else:
            from spane_py.registry import NodeRegistry

            engine = WorkflowEngine(NodeRegistry(), **settings.engine_kwargs())
        try:
            await _start(engine)
            if worker_concurrency == 0 and not engine.store.shared:
                logger.warning(
                    "spane api uses the in-memory store and runs no worker: executions "
                    "started here never run (no other process sees this store); pass "
                    "--worker-concurrency N, or use PostgreSQL (DATABASE_URL)"
                )
            web = create_app(engine, ApiSettings(), worker_concurrency=worker_concurrency)
            logger.info(
                "spane api: store %s, key prefix %r, auth %s",
                engine.store.describe(),
                engine.key_prefix,
                "on" if ApiSettings().token_value else "off",
            )
            await serve(web, host=host, port=port, log_level=settings.log_level.lower())
        finally:
            await engine.close(grace_seconds=engine.shutdown_grace)
        logger.info("spane api stopped")

    try:
        asyncio.run(main())
    except AppError as exc:
        fail(str(exc))
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)


async def _wait_with_progress(
    engine: WorkflowEngine, execution_id: str, timeout: float, *, show: bool
) -> ExecutionState:
    """Wait for the execution; on a terminal, show a spinner with its nodes' progress."""
    if not show:
        return await engine.wait_for_execution(execution_id, timeout=timeout)
    console = Console(stderr=True, highlight=False)
    waiting = asyncio.ensure_future(engine.wait_for_execution(execution_id, timeout=timeout))
    with console.status(f"execution {execution_id[:8]}: starting") as status:
        while not waiting.done():
            await asyncio.wait([waiting], timeout=0.25)
            if waiting.done():
                break
            state = await engine.get_execution(execution_id)
            done = sum(1 for r in state.node_results.values() if r.status.is_terminal)
            running = [n for n, r in state.node_results.items() if not r.status.is_terminal]
            status.update(
                f"execution {execution_id[:8]}: {state.status.value}, {done} node(s) done"
                + (f", now: {', '.join(running[:3])}" if running else "")
            )
    return waiting.result()


cli_inspect.register(app)
cli_control.register(app)
cli_registry.register(app)
cli_data.register(app)
cli_db.register(app)
cli_ops.register(app)


def main() -> None:
    app(prog_name="spane")


if __name__ == "__main__":
    main()
