"""Helpers of the ``spane`` command: errors and exit codes, settings and ``--store``, loading
the APP a command names. Only ``spane_py.cli`` uses them."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import ConfigurationError, SpaneError
from spane_py.settings import SpaneSettings

T = TypeVar("T")

USAGE_ERROR = 2
NOT_COMPLETED = 1


class AppError(Exception):
    """APP does not name a usable engine (exit code 2)."""


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    stderr().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _no_flag_metavar(params: list[Any]) -> list[Any]:
    """Flags (``--json``, ``--help``) take no value: give them an empty metavar, so that
    the help does not label them with a type (typer's rich help shows ``<bool>``)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class SpaneCommand(TyperCommand):
    """A ``spane`` command: its help shows no type label on flags."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer's click (vendored from 0.29)
        return _no_flag_metavar(super().get_params(ctx))


class SpaneGroup(TyperGroup):
    """A ``spane`` command group: its help shows no type label on flags."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer's click (vendored from 0.29)
        return _no_flag_metavar(super().get_params(ctx))


class Store(StrEnum):
    memory = "memory"
    postgres = "postgres"


StoreOption = Annotated[
    Store | None,
    typer.Option(
        "--store",
        help="memory or postgres (default: SPANE_STORE, else postgres when DATABASE_URL is "
        "set, else memory). PostgreSQL without DATABASE_URL: the embedded server in .spane/pg.",
    ),
]


def load_settings(store: Store | None = None, *, export: bool = False) -> SpaneSettings:
    """The settings; ``store`` (``--store``) wins over ``SPANE_STORE``. ``export`` sets
    ``SPANE_STORE`` for the APP module, which reads its own ``SpaneSettings()``."""
    if store is not None and export:
        os.environ["SPANE_STORE"] = store.value
    try:
        settings = SpaneSettings() if store is None else SpaneSettings(store=store.value)
    except ValidationError as exc:
        problems = "; ".join(
            (f"SPANE_{'.'.join(str(p) for p in e['loc']).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        fail(f"invalid settings in the environment: {problems}")
    check_store(settings)
    return settings


def check_store(settings: SpaneSettings) -> None:
    """A PostgreSQL store that cannot work (extra missing, bad schema name or URL) is a
    usage error, said before anything starts."""
    if settings.store_kind != "postgres":
        return
    try:
        settings.make_store()
        if settings.database_url:
            from spane_py.stores.postgres.migrate import parse_dsn

            parse_dsn(settings.database_url)
    except ConfigurationError as exc:
        fail(str(exc))


def print_json(value: object) -> None:
    """``--json`` output: indented, UTF-8, anything not JSON as its ``str``."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_app(path: str) -> object:
    """Import ``module:attribute`` (the attribute may be dotted) and return the object."""
    module_name, sep, attr = path.partition(":")
    parts = attr.split(".")
    if (
        not sep
        or not module_name
        or not attr
        or not all(p.isidentifier() for p in module_name.split("."))
        or not all(p.isidentifier() for p in parts)
    ):
        raise AppError(
            f"APP must look like 'module:attribute' (for example 'myapp.worker:engine'), "
            f"got {path!r}"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppError(
                f"cannot import module {module_name!r} of APP {path!r}: "
                f"no module named {exc.name!r} (run from the directory that contains it, "
                "or install it)"
            ) from None
        raise AppError(f"importing module {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise AppError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: object = module
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = module_name + "".join("." + p for p in parts[:i])
            raise AppError(f"{where!r} has no attribute {part!r} (APP {path!r})") from None
    return obj


async def resolve_engine(obj: object, path: str) -> WorkflowEngine:
    """``obj`` itself when it is an engine; else call it (awaiting the result if needed)."""
    if isinstance(obj, WorkflowEngine):
        return obj
    if not callable(obj) or isinstance(obj, type):
        raise AppError(
            f"APP {path!r} is a {type(obj).__name__}, not a WorkflowEngine or a function "
            "returning one"
        )
    try:
        result = obj()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        raise AppError(
            f"calling the factory APP {path!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(result, WorkflowEngine):
        raise AppError(
            f"the factory APP {path!r} returned {result!r:.60} ({type(result).__name__}), "
            "not a WorkflowEngine"
        )
    return result


__all__ = [
    "NOT_COMPLETED",
    "USAGE_ERROR",
    "AppError",
    "SpaneCommand",
    "SpaneGroup",
    "Store",
    "StoreOption",
    "check_store",
    "fail",
    "load_app",
    "load_settings",
    "resolve_engine",
    "setup_logging",
    "stderr",
]


def run_engine_action(
    build: Callable[[], WorkflowEngine], action: Callable[[WorkflowEngine], Awaitable[T]]
) -> T:
    """Run ``action`` on the engine ``build`` makes, then close it; a ``SpaneError`` it
    raises ends the command (exit 1) with its message."""

    async def main() -> T:
        engine = build()
        try:
            return await action(engine)
        finally:
            await engine.close(grace_seconds=0.5)

    try:
        return asyncio.run(main())
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)
