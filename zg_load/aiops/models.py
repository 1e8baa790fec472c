"""Model tiers: what each model costs, how good it is and how long it takes to answer.

Latencies follow a lognormal around each tier's median, drawn from one seeded generator
per model, so a service started with the same seed draws the same latencies in the same
order. Durations here are simulated milliseconds; callers multiply by the time scale.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

PREMIUM = "premium"
STANDARD = "standard"
ECONOMY = "economy"
DEFAULT_CHAIN = (PREMIUM, STANDARD, ECONOMY)
LATENCY_SIGMA = 0.25


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: its name, tier, median latency, cost per call and quality score."""

    name: str
    tier: str
    median_latency_ms: float
    cost_usd: float
    quality: float


MODELS: dict[str, ModelSpec] = {
    PREMIUM: ModelSpec(PREMIUM, PREMIUM, 800.0, 0.03, 0.95),
    STANDARD: ModelSpec(STANDARD, STANDARD, 300.0, 0.01, 0.85),
    ECONOMY: ModelSpec(ECONOMY, ECONOMY, 100.0, 0.002, 0.70),
}


class LatencyDraws:
    """Seeded lognormal latencies and error draws, one generator per model."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rngs: dict[str, random.Random] = {}
        self.reset()

    def reset(self) -> None:
        self._rngs = {name: random.Random(f"{self._seed}:{name}") for name in sorted(MODELS)}

    def latency_ms(self, model: ModelSpec) -> float:
        """A simulated latency in milliseconds (median = the tier's median)."""
        normal = self._rngs[model.name].gauss(0.0, LATENCY_SIGMA)
        return model.median_latency_ms * math.exp(normal)

    def fails(self, model: ModelSpec, error_rate: float) -> bool:
        """Whether a call to `model` fails, at `error_rate` (0 never draws)."""
        return error_rate > 0 and self._rngs[model.name].random() < error_rate
