"""The paper venue's latency: how long a new order takes to reach its book.

Drawn per order from the venue's seeded random source (`execution.simulation.latency`, or
`fill_delay_ms` as a fixed latency). A fixed latency draws nothing, so it leaves the random
sequence to the venue's other choices. Latency is time, not money: floats are fine here.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

from trading_core.config import MAX_LATENCY_MS, SimulationLatency


def draw_latency(latency: SimulationLatency, rng: random.Random) -> timedelta:
    """One order's latency: `fixed` is `mean_ms`; `uniform` is even within `mean_ms` ±
    `jitter_ms`; `lognormal` has mean `mean_ms` (its logarithm's mean is ln(mean_ms) -
    sigma² / 2) and is cut at MAX_LATENCY_MS, where its long tail would hold an order for ever."""
    if latency.distribution == "fixed":
        milliseconds = float(latency.mean_ms)
    elif latency.distribution == "uniform":
        low, high = latency.mean_ms - latency.jitter_ms, latency.mean_ms + latency.jitter_ms
        milliseconds = rng.uniform(low, high)
    else:
        mu = math.log(latency.mean_ms) - latency.sigma**2 / 2
        milliseconds = min(rng.lognormvariate(mu, latency.sigma), MAX_LATENCY_MS)
    return timedelta(milliseconds=milliseconds)
