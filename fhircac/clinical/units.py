"""Unit normalisation for labs and vitals: every value enters the core in one canonical unit.

Conversion factors are REFERENCE §8's. Lp(a) mass (mg/dL) and molar (nmol/L) units measure
different things and are never converted into each other. A unit not in the table is an error
naming it: it is never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from fhircac.clinical.errors import InvalidInput


class Analyte(StrEnum):
    TOTAL_CHOLESTEROL = "total_cholesterol"
    HDL = "hdl"
    LDL = "ldl"
    TRIGLYCERIDES = "triglycerides"
    APOB = "apob"
    LPA = "lpa"
    HS_CRP = "hs_crp"
    FASTING_INSULIN = "fasting_insulin"
    HBA1C = "hba1c"
    SYSTOLIC_BP = "systolic_bp"


MG_DL = "mg/dL"
MG_L = "mg/L"
NMOL_L = "nmol/L"
MICRO_IU_ML = "u[IU]/mL"
PERCENT = "%"
MM_HG = "mm[Hg]"

CHOLESTEROL_MMOL_PER_MG_DL = 0.02586
TRIGLYCERIDE_MMOL_PER_MG_DL = 0.01129

# Spellings seen in lab systems and on the command line → the UCUM code used below.
_UNIT_ALIASES = {
    "mg/dl": MG_DL,
    "mmol/l": "mmol/L",
    "g/l": "g/L",
    "mg/l": MG_L,
    "nmol/l": NMOL_L,
    "u[iu]/ml": MICRO_IU_ML,
    "uiu/ml": MICRO_IU_ML,
    "uu/ml": MICRO_IU_ML,
    "mu/l": MICRO_IU_ML,
    "miu/l": MICRO_IU_ML,
    "m[iu]/l": MICRO_IU_ML,
    "pmol/l": "pmol/L",
    "%": PERCENT,
    "mmol/mol": "mmol/mol",
    "mm[hg]": MM_HG,
    "mmhg": MM_HG,
    "kpa": "kPa",
}

Converter = Callable[[float], float]


def _scale(factor: float) -> Converter:
    return lambda value: value * factor


_IDENTITY = _scale(1.0)
_CHOLESTEROL: dict[str, tuple[str, Converter]] = {
    MG_DL: (MG_DL, _IDENTITY),
    "mmol/L": (MG_DL, lambda v: v / CHOLESTEROL_MMOL_PER_MG_DL),
}

# analyte → {accepted unit → (canonical unit, conversion)}
_CONVERSIONS: dict[Analyte, dict[str, tuple[str, Converter]]] = {
    Analyte.TOTAL_CHOLESTEROL: _CHOLESTEROL,
    Analyte.HDL: _CHOLESTEROL,
    Analyte.LDL: _CHOLESTEROL,
    Analyte.TRIGLYCERIDES: {
        MG_DL: (MG_DL, _IDENTITY),
        "mmol/L": (MG_DL, lambda v: v / TRIGLYCERIDE_MMOL_PER_MG_DL),
    },
    Analyte.APOB: {MG_DL: (MG_DL, _IDENTITY), "g/L": (MG_DL, _scale(100.0)), MG_L: (MG_DL, _scale(0.1))},
    Analyte.LPA: {
        MG_DL: (MG_DL, _IDENTITY),
        MG_L: (MG_DL, _scale(0.1)),
        "g/L": (MG_DL, _scale(100.0)),
        NMOL_L: (NMOL_L, _IDENTITY),
    },
    Analyte.HS_CRP: {MG_L: (MG_L, _IDENTITY), MG_DL: (MG_L, _scale(10.0))},
    Analyte.FASTING_INSULIN: {MICRO_IU_ML: (MICRO_IU_ML, _IDENTITY)},
    # IFCC (mmol/mol) to NGSP (%): the IFCC-NGSP master equation.
    Analyte.HBA1C: {PERCENT: (PERCENT, _IDENTITY), "mmol/mol": (PERCENT, lambda v: v / 10.929 + 2.15)},
    Analyte.SYSTOLIC_BP: {MM_HG: (MM_HG, _IDENTITY), "kPa": (MM_HG, _scale(7.50062))},
}

_WHY_NOT: dict[tuple[Analyte, str], str] = {
    (Analyte.LPA, "mmol/L"): "Lp(a) is reported in mg/dL or nmol/L; mass and molar units are not convertible",
    (Analyte.FASTING_INSULIN, "pmol/L"): (
        "insulin in pmol/L is not converted (the factor is not standardised); give µU/mL"
    ),
    (Analyte.APOB, "mmol/L"): (
        "ApoB is not measured in mmol/L (source 002's target '0.8 mmol/L' is a unit slip for 0.8 g/L); "
        "give g/L or mg/dL"
    ),
}

# Values outside these bounds (canonical units) are physiologically impossible: an input error,
# not a clinical finding. Bounds are deliberately wide so real extremes still pass.
PLAUSIBLE_RANGES: dict[tuple[Analyte, str], tuple[float, float]] = {
    (Analyte.TOTAL_CHOLESTEROL, MG_DL): (20.0, 2000.0),
    (Analyte.HDL, MG_DL): (1.0, 300.0),
    (Analyte.LDL, MG_DL): (1.0, 1500.0),
    (Analyte.TRIGLYCERIDES, MG_DL): (1.0, 30000.0),
    (Analyte.APOB, MG_DL): (1.0, 1000.0),
    (Analyte.LPA, MG_DL): (0.0, 1000.0),
    (Analyte.LPA, NMOL_L): (0.0, 2500.0),
    (Analyte.HS_CRP, MG_L): (0.0, 1000.0),
    (Analyte.FASTING_INSULIN, MICRO_IU_ML): (0.0, 5000.0),
    (Analyte.HBA1C, PERCENT): (2.0, 25.0),
    (Analyte.SYSTOLIC_BP, MM_HG): (40.0, 350.0),
}


def normalise_unit(unit: str) -> str | None:
    """The UCUM code for a unit spelling, or None if it is not one we know."""
    key = unit.strip().replace("µ", "u").replace("μ", "u").replace(" ", "").lower()
    return _UNIT_ALIASES.get(key)


def canonical_unit(analyte: Analyte) -> str:
    return next(iter(_CONVERSIONS[analyte].values()))[0]


def accepted_units(analyte: Analyte) -> list[str]:
    return list(_CONVERSIONS[analyte])


def to_canonical(
    analyte: Analyte, value: float, unit: str | None, field: str | None = None
) -> tuple[float, str]:
    """Convert ``value`` in ``unit`` (None: already canonical) and check it is possible."""
    name = field or analyte.value
    if unit is None:
        target, convert = canonical_unit(analyte), _IDENTITY
        if analyte is Analyte.LPA:
            raise InvalidInput.single(name, "Lp(a) needs its unit: mg/dL or nmol/L")
    else:
        code = normalise_unit(unit)
        if code is not None and (analyte, code) in _WHY_NOT:
            raise InvalidInput.single(name, _WHY_NOT[(analyte, code)])
        if code is None or code not in _CONVERSIONS[analyte]:
            accepted = ", ".join(accepted_units(analyte))
            raise InvalidInput.single(name, f"unit {unit!r} is not understood here; accepted: {accepted}")
        target, convert = _CONVERSIONS[analyte][code]
    converted = convert(value)
    check_plausible(analyte, converted, target, name)
    return converted, target


def check_plausible(analyte: Analyte, value: float, unit: str, field: str) -> None:
    low, high = PLAUSIBLE_RANGES[(analyte, unit)]
    if not low <= value <= high:
        raise InvalidInput.single(
            field, f"{value:g} {unit} is not a possible value (expected {low:g}–{high:g})"
        )


def cholesterol_mmol(mg_dl: float) -> float:
    return mg_dl * CHOLESTEROL_MMOL_PER_MG_DL


def triglycerides_mmol(mg_dl: float) -> float:
    return mg_dl * TRIGLYCERIDE_MMOL_PER_MG_DL
