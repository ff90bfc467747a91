"""Circuit breakers per node type, their state shared by every process through Redis.

closed --(failure_threshold failures within window_seconds)--> open
open --(open_seconds later, the next start)--> half_open
half_open --(half_open_probes probe successes)--> closed
half_open --(one probe failure)--> open

The move to half-open happens inside admission (``scripts.ADMIT``), the others when a
call's outcome is recorded (``scripts.RECORD``); each is one atomic script, so a transition
happens once however many processes see it, and the process that made it announces it.

Recording costs a round trip only when it can change something: a failure, or the end of
a half-open probe. A success while closed — the common case — costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import QueueError
from spane_py.traffic import scripts
from spane_py.traffic.admission import Admission, TrafficKeys

Verdict = Literal["ok", "fail", "release"]
# An open or half-open breaker nobody touches is forgotten (closed) this long after it
# opened, on top of its open time: state must not outlive a deployment forever.
STATE_TTL_EXTRA_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A node type's breaker as Redis has it now."""

    node_type: str
    state: str  # closed | open | half_open
    failures: int  # failures within the window (closed)
    opened_at: datetime | None = None
    open_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    state: str
    event: str  # "" | "opened" | "closed"
    failures: int


class Breakers:
    def __init__(self, redis: Redis, keys: TrafficKeys) -> None:
        self.redis = redis
        self.keys = keys
        self._record = redis.register_script(scripts.RECORD)

    @staticmethod
    def needs_record(admission: Admission, verdict: Verdict) -> bool:
        """Whether this outcome can change the breaker (else no round trip is spent)."""
        return admission.breaker is not None and (admission.probe or verdict == "fail")

    async def record(self, admission: Admission, verdict: Verdict) -> Recorded:
        policy = admission.breaker
        assert policy is not None
        k, t = self.keys, admission.node_type
        try:
            state, event, failures = await self._record(
                keys=[k.breaker(t), k.failures(t), k.probes(t)],
                args=[
                    verdict,
                    admission.member,
                    "1" if admission.probe else "0",
                    policy.failure_threshold,
                    policy.window_ms,
                    policy.open_ms,
                    policy.half_open_probes,
                    policy.open_ms + STATE_TTL_EXTRA_MS,
                ],
            )
        except (RedisError, OSError) as exc:
            raise QueueError(f"could not update the circuit breaker of {t!r}: {exc}") from exc
        return Recorded(_text(state), _text(event), int(failures))

    async def state(self, node_type: str, window_ms: int | None = None) -> BreakerState:
        """The breaker of ``node_type``; ``failures`` counts those within ``window_ms``
        (all that Redis still keeps when None)."""
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.time()
                pipe.hgetall(k.breaker(node_type))
                pipe.zrange(k.failures(node_type), 0, -1, withscores=True)
                (sec, usec), raw, failures = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise QueueError(f"could not read the circuit breaker of {node_type!r}: {exc}") from exc
        now = int(sec) * 1000 + int(usec) // 1000
        fields = {_text(key): _text(value) for key, value in raw.items()}
        recent = [s for _, s in failures if window_ms is None or s > now - window_ms]
        return BreakerState(
            node_type=node_type,
            state=fields.get("state", "closed"),
            failures=len(recent),
            opened_at=_ms(fields.get("opened_at")),
            open_until=_ms(fields.get("open_until")),
        )

    async def reset(self, node_type: str) -> None:
        """Close the breaker now and forget its failures (an operator's decision)."""
        k = self.keys
        try:
            await self.redis.delete(
                k.breaker(node_type), k.failures(node_type), k.probes(node_type)
            )
        except (RedisError, OSError) as exc:
            raise QueueError(
                f"could not reset the circuit breaker of {node_type!r}: {exc}"
            ) from exc


def _ms(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(float(value)) / 1000, UTC)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
