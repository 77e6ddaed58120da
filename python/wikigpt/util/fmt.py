"""The one place numbers become short human strings: bytes, counts, token counts, ETAs and durations. Every progress
line, status table and estimate formats through these, so the same quantity reads the same everywhere."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disk and download sizes are quoted)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def fmt_count(n: float) -> str:
    """Pages, articles, tokens in a progress line: 1234567 -> '1.2M'."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{int(n)}"


def fmt_tokens(n: float) -> str:
    """Token estimates in tables, with three significant figures: 1.23B, 45.6M."""
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}" if n / div < 10 else f"{n / div:.1f}{unit}"
    return str(int(n))


def fmt_eta(seconds: float) -> str:
    """A countdown: 'MM:SS' or 'H:MM:SS'; '--:--' when unknown (NaN, negative) or absurd (over 99 h)."""
    if seconds != seconds or seconds < 0 or seconds > 99 * 3600:
        return "--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def fmt_duration(seconds: float) -> str:
    """An estimate of how long something takes, in the unit a person would say: '40 s', '12 min', '3.5 h'."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
