"""Per-agent rate limits: one token bucket per agent id.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes one
token or is refused with the whole seconds until one is back (at least 1), which is
what the 429 answer's Retry-After says. Buckets of idle agents are forgotten once there
are more than `max_agents`, so an id-spraying client cannot grow memory without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, max_agents: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._max_agents = max_agents
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, agent_id: str, rate_per_s: float, burst: float) -> int | None:
        """None if the agent may go ahead, else the Retry-After in whole seconds."""
        now_s = self._clock()
        tokens, last_s = self._buckets.get(agent_id, (burst, now_s))
        tokens = min(burst, tokens + (now_s - last_s) * rate_per_s)
        if tokens >= 1.0:
            self._store(agent_id, (tokens - 1.0, now_s))
            return None
        self._store(agent_id, (tokens, now_s))
        return max(1, math.ceil((1.0 - tokens) / rate_per_s))

    def reset(self) -> None:
        self._buckets.clear()

    def _store(self, agent_id: str, bucket: tuple[float, float]) -> None:
        if agent_id not in self._buckets and len(self._buckets) >= self._max_agents:
            self._buckets.clear()
        self._buckets[agent_id] = bucket
