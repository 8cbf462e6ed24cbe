"""Score bands, CAC-DRS and CAC stage (REFERENCE §2).

Agatston scores may carry decimals, so every boundary is written on the real line: "1-99" is
any score above 0 and below 100.
"""

from __future__ import annotations

import math

PRIMARY_BANDS = ("0", "1-99", "100-399", "≥400")
FINE_BANDS = ("0", "1-10", "11-100", "101-400", ">400")

HIGH_SCORE = 100.0  # CAC ≥100: statin reasonable (REFERENCE §7), Lp(a) once (source 004)
VERY_HIGH_SCORE = 400.0  # CAC ≥400: repeat scanning has little value (source 000)


def shown_score(agatston: float) -> str:
    """A score as people read it: whole numbers as such, otherwise one decimal cut (not rounded), so
    the number shown never crosses into the next band (399.99 reads 399.9, not 400)."""
    if float(agatston).is_integer():
        return str(int(agatston))
    return f"{math.floor(agatston * 10) / 10:.1f}"


def primary_band(agatston: float) -> str:
    """Sources 002 and 003: 0, 1-99, 100-399, ≥400."""
    if agatston <= 0:
        return "0"
    if agatston < 100:
        return "1-99"
    if agatston < 400:
        return "100-399"
    return "≥400"


def fine_band(agatston: float) -> str:
    """Source 004: 0, 1-10, 11-100, 101-400, >400 (upper bounds inclusive)."""
    if agatston <= 0:
        return "0"
    if agatston <= 10:
        return "1-10"
    if agatston <= 100:
        return "11-100"
    if agatston <= 400:
        return "101-400"
    return ">400"


def cac_drs(agatston: float, vessels_with_calcium: int | None) -> str:
    """CAC-DRS A0-A3, with /N only when per-vessel data exist and the total is above 0."""
    if agatston <= 0:
        category = "A0"
    elif agatston < 100:
        category = "A1"
    elif agatston < 300:
        category = "A2"
    else:
        category = "A3"
    if vessels_with_calcium is None or agatston <= 0:
        return category
    return f"{category}/N{vessels_with_calcium}"


def cac_stage(agatston: float, percentile: float | None) -> int | None:
    """Maron 2024 stage 0-4; None when a score of 1-99 has no percentile to place it."""
    if agatston <= 0:
        return 0
    if agatston >= 1000:
        return 4
    if agatston >= 300:
        return 3
    if agatston >= 100:
        return 2
    if percentile is None:
        return None
    return 2 if percentile >= 75 else 1


def arterial_age(agatston: float) -> float:
    """McClelland 2009: the age at which this score would be the population median."""
    return 39.1 + 7.25 * math.log(agatston + 1)
