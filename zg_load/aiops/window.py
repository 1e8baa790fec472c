"""Budget windows: parsing "1d" / "12h" / "1h30m" and aligning windows to the epoch.

Windows are aligned to the Unix epoch in UTC, so a "1d" window runs from midnight to
midnight UTC and every process sharing a ledger agrees on when it resets.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_WINDOW = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
MAX_WINDOW_S = 3660 * 86_400


def parse_window_s(text: str) -> int:
    """Seconds in a window written as `30m`, `12h`, `1d`, `1w` or a sum like `1h30m`.

    Raises ValueError with a message fit for an API answer.
    """
    norm = text.strip().lower()
    if not _WINDOW.fullmatch(norm):
        raise ValueError("must be a duration such as '30m', '12h', '1d' or '1h30m'")
    window_s = sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(norm))
    if not 1 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"must be between 1s and {MAX_WINDOW_S // 86_400}d")
    return window_s


def window_start_s(now_s: float, window_s: int) -> int:
    """Epoch second at which the window holding `now_s` started."""
    return int(now_s // window_s) * window_s


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC timestamp with a `Z` suffix, e.g. `2025-01-02T00:00:00Z`."""
    stamp = datetime.fromtimestamp(epoch_s, UTC).isoformat()
    return stamp.replace("+00:00", "Z")
