"""Replay memory of signed webhook requests, in Redis, shared by every process of a prefix.

A signed request is known by its fingerprint (``signatures.verify``). The first process to
see one claims ``<prefix>:webhook:seen:<sha256 of path, method and fingerprint>`` with
``SET NX`` and a TTL, then writes the id of the execution it started there; a repeat inside
the TTL finds the key and is answered with that id, starting nothing. The key names no
secret and holds no body.

The claim and the execution are two writes; the execution's idempotency key (the same
fingerprint) closes the gap: a repeat that arrives while the first is still starting, or
after a first that failed between the two, calls the same start with the same key and gets
the first's id from the store, or starts the execution the first never did.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from redis.exceptions import RedisError

from spane_py.errors import QueueError

logger = logging.getLogger("spane_py.webhooks")


def fingerprint_key(where: str, fingerprint: str) -> str:
    """The digest a signed request of one webhook is remembered by (``where``: ``POST
    /path``)."""
    return hashlib.sha256(f"{where}\n{fingerprint}".encode()).hexdigest()


class ReplayMemory:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, digest: str) -> str:
        return f"{self.prefix}:webhook:seen:{digest}"

    async def claim(self, digest: str, ttl_s: float) -> str | None:
        """None when this process is the first to see ``digest`` inside ``ttl_s``; else
        what the first wrote: the execution id, or "" while (or if) it has none yet."""
        key = self.key(digest)
        ttl_ms = max(1, int(ttl_s * 1000))
        try:
            if await self.redis.set(key, b"", nx=True, px=ttl_ms):
                return None
            seen = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            raise QueueError(f"cannot check the webhook replay memory in Redis: {exc}") from exc
        if seen is None:
            return ""  # expired between the two calls: the start decides, by its key
        return seen.decode() if isinstance(seen, bytes) else str(seen)

    async def remember(self, digest: str, execution_id: str, ttl_s: float) -> None:
        """Write the first execution's id under a claimed ``digest`` (best effort: a repeat
        that finds no id asks the store, by the execution's idempotency key)."""
        ttl_ms = max(1, int(ttl_s * 1000))
        try:
            await self.redis.set(self.key(digest), execution_id.encode(), xx=True, px=ttl_ms)
        except (RedisError, OSError) as exc:
            logger.warning(
                "could not remember webhook execution %s in Redis: %s", execution_id, exc
            )


__all__ = ["ReplayMemory", "fingerprint_key"]
