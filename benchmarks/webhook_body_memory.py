"""Memory that ``spane api`` gains while hostile senders POST large bodies to a webhook.

    python benchmarks/webhook_body_memory.py [--size-mb 30] [--parallel 8]

Starts ``spane api`` (in-memory store, ``$REDIS_URL`` or the embedded Redis, a key prefix
of its own, one in-process worker) with ``webhook_app.py``: one workflow behind an open
(unsigned) webhook, ``POST /api/webhooks/bench/upload``, under the default limits (the body
at most ``Limits.max_payload_bytes``, 1 MiB). Then ``--parallel`` clients each POST a
``--size-mb`` JSON body at once, streamed from one small buffer over raw asyncio sockets,
the response read while the body is still being sent:

    (a) with ``Content-Length`` (the server should refuse it by its header, reading nothing)
    (b) chunked, no ``Content-Length`` (refused once more than the limit has arrived)

Each case gets a fresh server, so that its peak is its own. Reported from
``/proc/<pid>/status``: VmRSS before (after one accepted and one refused warm-up request),
the peak (VmHWM, reset after the warm-up through ``/proc/<pid>/clear_refs`` where the
kernel allows it, and VmRSS sampled every 5 ms), VmRSS after; each response's status and
error code, and how much of its body the client got off before the answer came (the
kernel's socket buffers take a few MB before the server reads anything). Before the fix
(bodies read in full, then checked) eight 30 MB POSTs took the server from 104 MB to
433 MB. Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import machine, redis_kind
from webhook_app import HOOK_PATH

from spane_py.limits import DEFAULT_LIMITS

HERE = Path(__file__).resolve().parent
CHUNK = 64 * 1024
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the like of ``pid``, in bytes."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Vm") and value.strip().endswith("kB"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+: ``echo 5 > /proc/PID/clear_refs``)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class Sampler(threading.Thread):
    """The highest VmRSS of ``pid`` seen, every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


@contextlib.contextmanager
def spane_api(log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``spane api`` with webhook_app on a free port, until it answers /healthz; stopped
    (SIGTERM, then SIGKILL) on the way out."""
    port, prefix = free_port(), f"benchwh{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SPANE_STORE": "memory",
        "SPANE_KEY_PREFIX": prefix,
        "SPANE_LOG_LEVEL": "WARNING",
    }
    env.pop("SPANE_API_TOKEN", None)
    args = [sys.executable, "-m", "spane_py.cli", "api", "--app", "webhook_app:create_engine",
            "--port", str(port), "--store", "memory", "--worker-concurrency", "1"]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"spane api exited ({proc.returncode}):\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"spane api did not answer in 60 s:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        drop_keys(prefix)


def drop_keys(prefix: str) -> None:
    """Delete the server's Redis keys (the embedded Redis goes away with the server)."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass
class Outcome:
    status: str  # "413", or the exception that ended the exchange
    code: str  # the error code of the JSON answer, if any
    sent: int  # body bytes handed to the kernel before the answer came
    seconds: float


def body_parts(size: int) -> Iterator[bytes]:
    """A JSON document of exactly ``size`` bytes (``{"blob":"xxx..."}``), in CHUNK pieces
    of one shared buffer."""
    head, tail = b'{"blob":"', b'"}'
    filler = b"x" * CHUNK
    yield head
    left = size - len(head) - len(tail)
    while left > 0:
        n = min(left, CHUNK)
        yield filler if n == CHUNK else filler[:n]
        left -= n
    yield tail


async def post(port: int, size: int, *, chunked: bool) -> Outcome:
    """POST a ``size``-byte body to the hook, reading the answer while sending."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        f"POST /api/webhooks/{HOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    sent = 0

    async def send() -> None:
        nonlocal sent
        writer.write(head.encode())
        for part in body_parts(size):
            if chunked:
                writer.write(b"%x\r\n" % len(part))
                writer.write(part)
                writer.write(b"\r\n")
            else:
                writer.write(part)
            await writer.drain()
            sent += len(part)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(send())
    status, code = "no answer", ""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout=120)
        status = line.split()[1].decode() if line.startswith(b"HTTP/") else f"bad {line[:40]!r}"
        sender.cancel()
        length = 0
        while (header := await asyncio.wait_for(reader.readline(), timeout=30)) not in (
            b"\r\n",
            b"",
        ):
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if 0 < length <= 65536:
            with contextlib.suppress(ValueError, LookupError, TypeError):
                code = json.loads(await reader.readexactly(length))["error"]["code"]
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
        if status == "no answer":
            status = type(exc).__name__
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return Outcome(status, code, sent, time.perf_counter() - start)


async def warm_up(port: int, limit: int) -> list[str]:
    """One small accepted request and one refused one, so that the baseline includes the
    code both take."""
    small = await post(port, 64, chunked=False)
    over = await post(port, limit + 1, chunked=True)
    return [small.status, over.status]


async def attack(port: int, size: int, parallel: int, *, chunked: bool) -> list[Outcome]:
    return list(await asyncio.gather(*(post(port, size, chunked=chunked) for _ in range(parallel))))


def run_case(name: str, *, chunked: bool, size: int, parallel: int, limit: int, log: Path) -> None:
    with spane_api(log) as (proc, port):
        warm = asyncio.run(warm_up(port, limit))
        if warm != ["202", "413"]:
            raise RuntimeError(f"warm-up answers {warm}, expected ['202', '413']")
        time.sleep(0.5)
        before = proc_status(proc.pid)
        hwm_reset = reset_peak(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.perf_counter()
        try:
            outcomes = asyncio.run(attack(port, size, parallel, chunked=chunked))
        finally:
            elapsed = time.perf_counter() - t0
            time.sleep(0.5)
            sampled = sampler.stop()
        after = proc_status(proc.pid)
    statuses = Counter(f"{o.status} {o.code}".strip() for o in outcomes)
    sent = [o.sent / MB for o in outcomes]
    took = [o.seconds for o in outcomes]
    base = before["VmRSS"]
    peak = max(after["VmHWM"], sampled)

    def mb(n: int, *, sign: bool = False) -> str:
        return f"{n / MB:+.1f} MB" if sign else f"{n / MB:.1f} MB"

    framing = "chunked" if chunked else "Content-Length"
    since = "reset after the warm-up" if hwm_reset else f"since start, {mb(before['VmHWM'])} before"
    print(f"({name}) {parallel} x {size / MB:g} MB, {framing}")
    print(f"    RSS before   {mb(base)}")
    print(
        f"    peak         {mb(peak)} ({mb(peak - base, sign=True)}; VmHWM {mb(after['VmHWM'])} "
        f"{since}; sampled VmRSS max {mb(sampled)})"
    )
    print(f"    RSS after    {mb(after['VmRSS'])} ({mb(after['VmRSS'] - base, sign=True)})")
    print(f"    statuses     {dict(statuses)}")
    print(
        f"    body sent before the answer {min(sent):.2f}-{max(sent):.2f} MB per request; "
        f"answers in {min(took):.2f}-{max(took):.2f} s ({elapsed:.2f} s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=30, help="body size of each POST")
    parser.add_argument("--parallel", type=int, default=8, help="POSTs at once")
    args = parser.parse_args()
    size, limit = int(args.size_mb * MB), DEFAULT_LIMITS.max_payload_bytes
    print(
        f"webhook body memory: spane api (in-memory store, {redis_kind()}), "
        f"webhook body limit {limit:,} bytes; {machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="spane-bench-") as tmp:
        log = Path(tmp) / "api.log"
        for name, chunked in (("a", False), ("b", True)):
            run_case(name, chunked=chunked, size=size, parallel=args.parallel, limit=limit, log=log)


if __name__ == "__main__":
    main()
