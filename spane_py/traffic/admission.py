"""Admission: may one node (or map item) of a type call its service now?

One Lua call (``scripts.ADMIT``) answers it for every rule at once — the type's circuit
breaker, a hold from ``ctx.rate_limit``, the type's rate limit and the engine's global one —
atomically across processes: the rate limits are sliding-window logs, so no window of
``per_seconds`` ever holds more than ``max_calls`` admitted starts, whichever processes made
them. A refusal says how long to wait; the caller defers the node for that long.

Deferred nodes do not come back all at once when a slot frees (a thundering herd that
would cost every one of them a trip through the store per slot): each refused newcomer is
given the limit's next free turn, one interval (``per / max``) after the previous one, and a
node that comes back with its turn and still finds no slot (it was a few ms early) only
waits for the next slot to free, ahead of the newcomers.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from spane_py.errors import QueueError
from spane_py.traffic import scripts
from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit

# A refused node's ticket outlives its turn by this much (it may come back late).
TICKET_EXTRA_MS = 60_000
# Half-open with every probe out: look again after at most this long.
RECHECK_MAX_MS = 1_000
OK = "ok"
GLOBAL = "global"
TYPE = "type"
BLOCKED = "blocked"
OPEN = "open"
PROBING = "probing"


@dataclass(frozen=True, slots=True)
class TrafficKeys:
    """Redis keys of traffic control under one engine key prefix (see ``scripts``)."""

    prefix: str

    @property
    def channel(self) -> str:
        """Pub/sub: ``"<ms> <type>"`` when a type is held back by ``ctx.rate_limit``."""
        return f"{self.prefix}:traffic"

    def rate(self, scope: str) -> str:
        return f"{self.prefix}:traffic:rate:{scope}"

    def next_turn(self, scope: str) -> str:
        return f"{self.prefix}:traffic:next:{scope}"

    def ticket(self, member: str) -> str:
        return f"{self.prefix}:traffic:ticket:{member}"

    def blocked(self, node_type: str) -> str:
        return f"{self.prefix}:traffic:blocked:{node_type}"

    @property
    def blocked_pattern(self) -> str:
        return f"{self.prefix}:traffic:blocked:*"

    def breaker(self, node_type: str) -> str:
        return f"{self.prefix}:traffic:breaker:{node_type}"

    def failures(self, node_type: str) -> str:
        return f"{self.prefix}:traffic:failures:{node_type}"

    def probes(self, node_type: str) -> str:
        return f"{self.prefix}:traffic:probes:{node_type}"


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer for one start. ``code`` is ``ok``, or why not: ``global`` / ``type`` (a
    rate limit), ``blocked`` (``ctx.rate_limit``), ``open`` / ``probing`` (the breaker)."""

    node_type: str
    member: str
    code: str
    wait_ms: int
    probe: bool = False
    breaker: CircuitBreakerPolicy | None = None
    event: str = ""  # "half_open": this call moved the breaker there

    @property
    def admitted(self) -> bool:
        return self.code == OK

    @property
    def breaker_refused(self) -> bool:
        return self.code in (OPEN, PROBING)


class Admitter:
    def __init__(self, redis: Redis, keys: TrafficKeys) -> None:
        self.keys = keys
        self._admit = redis.register_script(scripts.ADMIT)

    async def admit(
        self,
        node_type: str,
        member: str,
        *,
        rate_limit: RateLimit | None,
        breaker: CircuitBreakerPolicy | None,
        global_limit: RateLimit | None,
        lease_ms: int,
    ) -> Admission:
        """One start of ``node_type`` (``member`` names it: a job id, a map item)."""
        k = self.keys
        keys = [k.ticket(member), k.blocked(node_type), k.breaker(node_type), k.probes(node_type)]
        probes = breaker.half_open_probes if breaker is not None else 0
        recheck = min(breaker.open_ms, RECHECK_MAX_MS) if breaker is not None else 0
        args: list[str | int] = [
            member,
            "1" if breaker is not None else "0",
            probes,
            lease_ms,
            recheck,
            TICKET_EXTRA_MS,
        ]
        for label, scope, limit in (
            (TYPE, f"type:{node_type}", rate_limit),
            (GLOBAL, "global", global_limit),
        ):
            if limit is not None:
                keys += [k.rate(scope), k.next_turn(scope)]
                args += [label, limit.max_calls, limit.per_ms]
        try:
            code, wait, event, probe = await self._admit(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise QueueError(
                f"could not check the rate limits of node type {node_type!r}: {exc}"
            ) from exc
        return Admission(
            node_type,
            member,
            _text(code),
            int(wait),
            probe=bool(int(probe)),
            breaker=breaker,
            event=_text(event),
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
