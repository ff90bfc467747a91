"""The Redis connection of the queue: arq's ``ArqRedis`` with spane_py's JSON serializers,
on a connection pool whose checkout costs no event-loop round trip."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from spane_py.errors import ConfigurationError
from spane_py.queue.jobs import deserialize, serialize


class _FastCheckPool(ConnectionPool):
    """A pool whose checkout health check does not cost an event-loop round trip.

    redis-py checks every connection it hands out with a zero-timeout socket read
    (``can_read_destructive``): a timer, a loop iteration and an exception per command,
    the largest single cost of a node hop. Data that arrived on an idle socket is already in
    its stream buffer (asyncio reads eagerly), so looking at the buffer is enough; any doubt
    falls back to redis-py's full check.
    """

    async def ensure_connection(self, connection: Any) -> None:
        if _looks_clean(connection):
            return
        await super().ensure_connection(connection)


def _looks_clean(connection: Any) -> bool:
    if not getattr(connection, "is_connected", False):
        return False
    stream = getattr(connection, "_reader", None)
    parser = getattr(connection, "_parser", None)
    buffer = getattr(stream, "_buffer", None)
    if stream is None or buffer is None or stream.at_eof() or len(buffer):
        return False
    reader = getattr(parser, "_reader", None)  # hiredis: buffered, unparsed replies
    has_data = getattr(reader, "has_data", None)
    return callable(has_data) and not has_data()


def connect(url: str, *, queue_name: str, max_connections: int = 64) -> ArqRedis:
    """An ``ArqRedis`` client for ``url`` with spane_py's JSON serializers."""
    try:
        pool = _FastCheckPool.from_url(url, max_connections=max_connections)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {_redact(url)!r}: {exc}") from exc
    return ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name,
    )


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


__all__ = ["connect"]
