"""Traffic control shared by every worker process: rate limits and circuit breakers.

* ``policies``: ``RateLimit`` and ``CircuitBreakerPolicy``, given to
  ``NodeRegistry.register(type, executor, rate_limit=..., circuit_breaker=...)``, and
  ``WorkflowEngine(global_rate_limit=...)``.
* ``limits``: admission — one Lua call decides whether a start may go now (breaker, hold,
  rate limits) or how long it must wait.
* ``breakers``: recording call outcomes, the breaker's state machine, reading its state.
* ``blocks``: ``ctx.rate_limit(ms)`` holding a type back in every process.
* ``control``: ``TrafficControl``, the facade the runner and map nodes use, with the events
  (``node.rate_limited``, ``breaker.*``) and counters.

A node type with no rate limit and no breaker, on an engine without a global limit, costs
no Redis round trip here. See docs/traffic.md.
"""
