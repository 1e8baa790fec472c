from __future__ import annotations

import pytest

from zg_load.aiops.window import iso_utc, parse_window_s, window_start_s


@pytest.mark.parametrize(
    ("text", "window_s"),
    [
        ("1s", 1),
        ("30m", 1800),
        ("12h", 43_200),
        ("1d", 86_400),
        ("1w", 604_800),
        ("1h30m", 5400),
        (" 2D ", 172_800),
        ("3660d", 3660 * 86_400),
    ],
)
def test_parse_window(text: str, window_s: int) -> None:
    assert parse_window_s(text) == window_s


@pytest.mark.parametrize("text", ["", "1", "d", "1x", "1.5h", "-1d", "0s", "1 d", "3661d", "1d 2h"])
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_window_s(text)


@pytest.mark.parametrize(
    ("now_s", "window_s", "start_s"),
    [(0.0, 86_400, 0), (86_399.9, 86_400, 0), (86_400.0, 86_400, 86_400), (3_700.5, 3600, 3600)],
)
def test_window_start_is_epoch_aligned(now_s: float, window_s: int, start_s: int) -> None:
    assert window_start_s(now_s, window_s) == start_s


def test_iso_utc() -> None:
    assert iso_utc(86_400) == "1970-01-02T00:00:00Z"
    assert iso_utc(1.5) == "1970-01-01T00:00:01.500000Z"
