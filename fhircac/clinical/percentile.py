"""MESA coronary artery calcium percentile by age, sex and race (McClelland et al., Circulation 2006).

MESA publishes no closed formula, only a web calculator, and its tables may not be redistributed. We ship
our own compact model fitted to the calculator's output (``tools/fit_percentile.py``), so the service
needs no network access and no copied tables. The model is two-part, like MESA's own estimate:

* ``p(age)``: the share of the group with CAC > 0, a quadratic in age per race x sex;
* among those with CAC > 0, ``ln(score) = mu(age) + sigma * Y``, with ``mu`` a quadratic in age per
  race x sex and ``Y`` a sinh-arcsinh transformed standard normal whose shape is shared by all groups.

``percentile = floor(100 * ((1 - p) + p * F(score)))`` clipped to 0..99: the calculator truncates, it
does not round, and it reports a score of 0 as percentile 0.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from statistics import NormalDist
from typing import Any

from fhircac.clinical.record import Race, Sex

MESA_MIN_AGE = 45
MESA_MAX_AGE = 84
MESA_RACES = frozenset({Race.WHITE, Race.BLACK, Race.HISPANIC, Race.CHINESE})

_MODEL_RESOURCE = "percentile_model.json"
_STANDARD_NORMAL = NormalDist()


def _polynomial(coefficients: tuple[float, ...], x: float) -> float:
    result = 0.0
    for coefficient in reversed(coefficients):
        result = result * x + coefficient
    return result


def _floats(value: Any, name: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int | float) for v in value):
        raise ValueError(f"percentile model: {name} must be a non-empty list of numbers")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class _GroupCoefficients:
    p_nonzero: tuple[float, ...]
    location: tuple[float, ...]


@dataclass(frozen=True)
class _Model:
    """The fitted coefficients; kept separate from the module state so the fitting script can check a
    freshly written file with exactly the code the service runs."""

    age_center: float
    age_scale: float
    p_min: float
    p_max: float
    sigma: float
    epsilon: float
    delta: float
    groups: dict[tuple[Sex, Race], _GroupCoefficients]

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> _Model:
        coefficients = document["coefficients"]
        shape = coefficients["shape"]
        groups: dict[tuple[Sex, Race], _GroupCoefficients] = {}
        for key, group in coefficients["groups"].items():
            race, sex = key.split(":")
            groups[(Sex(sex), Race(race))] = _GroupCoefficients(
                p_nonzero=_floats(group["p_nonzero"], f"{key}.p_nonzero"),
                location=_floats(group["location"], f"{key}.location"),
            )
        missing = {(sex, race) for sex in Sex for race in MESA_RACES} - groups.keys()
        if missing:
            raise ValueError(f"percentile model: no coefficients for {sorted(missing)}")
        return cls(
            age_center=float(coefficients["age_center"]),
            age_scale=float(coefficients["age_scale"]),
            p_min=float(coefficients["p_nonzero_clip"][0]),
            p_max=float(coefficients["p_nonzero_clip"][1]),
            sigma=float(shape["sigma"]),
            epsilon=float(shape["epsilon"]),
            delta=float(shape["delta"]),
            groups=groups,
        )

    def thresholds(self, age: int, sex: Sex, race: Race) -> tuple[float, ...]:
        """Inverting the model once per group turns every later lookup into a bisect."""
        group = self.groups[(sex, race)]
        x = (age - self.age_center) / self.age_scale
        p = min(max(_polynomial(group.p_nonzero, x), self.p_min), self.p_max)
        mu = _polynomial(group.location, x)
        thresholds: list[float] = []
        for n in range(1, 100):
            # Share of the CAC > 0 part that must lie below the score for the group to reach n %.
            q = (n / 100 - (1 - p)) / p
            if q <= 0:
                thresholds.append(0.0)  # the CAC = 0 share alone reaches n %: any positive score does
                continue
            z = _STANDARD_NORMAL.inv_cdf(q)
            y = math.sinh((math.asinh(z) + self.epsilon) / self.delta)
            thresholds.append(math.exp(mu + self.sigma * y))
        return tuple(thresholds)


def _load_model(text: str) -> _Model:
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("percentile model: top level must be an object")
    return _Model.from_json(document)


_DOCUMENT = json.loads(resources.files("fhircac.clinical").joinpath(_MODEL_RESOURCE).read_text("utf-8"))
_MODEL = _Model.from_json(_DOCUMENT)
# The fit's measured worst error against the official calculator (percentile points): how far an
# estimate may be off, so callers can say when a threshold decision is too close to call.
WORST_ABSOLUTE_ERROR = float(_DOCUMENT["accuracy"]["worst_absolute_error"]["error"])


def _validated(age: int, sex: Sex, race: Race) -> tuple[int, Sex, Race]:
    sex, race = Sex(sex), Race(race)
    if race not in MESA_RACES:
        raise ValueError(f"MESA percentiles are defined for white, black, hispanic and chinese, not {race}")
    if isinstance(age, bool) or not float(age).is_integer():
        raise ValueError(f"age must be whole years, got {age!r}")
    if not MESA_MIN_AGE <= age <= MESA_MAX_AGE:
        raise ValueError(f"MESA percentiles are defined for ages {MESA_MIN_AGE}-{MESA_MAX_AGE}, got {age}")
    return int(age), sex, race


@lru_cache(maxsize=1024)  # 320 valid groups; str and enum arguments cache apart
def percentile_thresholds(age: int, sex: Sex, race: Race) -> tuple[float, ...]:
    """The 99 scores at which percentiles 1..99 begin: a whole group's answers in one cached tuple."""
    return _MODEL.thresholds(*_validated(age, sex, race))


def estimate_percentile(age: float, sex: Sex, race: Race, agatston: float) -> int:
    """Percentile of ``agatston`` among MESA participants of the same completed age, sex and race."""
    if not math.isfinite(age):
        raise ValueError(f"age must be finite, got {age!r}")
    thresholds = percentile_thresholds(math.floor(age), sex, race)
    if math.isnan(agatston):
        raise ValueError("agatston must be a number, got NaN")
    if agatston <= 0:
        return 0
    return bisect.bisect_right(thresholds, agatston)
