"""zg_load: open-loop storm testing and validation for AI Ops control planes.

Latency is measured from each request's intended start time and recorded in HDR
histograms; every intended request is accounted for exactly once.
"""

from __future__ import annotations

__version__ = "0.1.0"
