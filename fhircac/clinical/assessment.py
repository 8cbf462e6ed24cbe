"""What ``assess`` returns: typed results plus cited statements, warnings and missing inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from fhircac.clinical.policies import Policy


class Claim(StrEnum):
    """What a statement asserts, in terms the guardrails (``guardrails.py``) check whatever the policy.

    A rule tags its statement with the claims it makes, so the guardrail layer can hold every policy,
    present or future, to REFERENCE §14 without knowing its rule ids.
    """

    STATIN_INDICATED = "statin-indicated"  # a guideline indication (Class I) whatever the score
    STATIN_REASONABLE = "statin-reasonable"  # starting (or continuing) a statin is reasonable
    NO_NEW_MEDICATION = "no-new-medication"  # "no new medication", "withhold a statin"
    ASPIRIN_CONSIDERED = "aspirin-considered"  # primary-prevention aspirin "may be considered"
    ASPIRIN_NOT_ADVISED = "aspirin-not-advised"  # not advised by a policy's own criteria (not Class III)
    EXERCISE = "exercise"  # an exercise prescription (any intensity)
    VIGOROUS_EXERCISE = "vigorous-exercise"  # vigorous, strength or VO2max training
    CARBOHYDRATE_RESTRICTION = "carbohydrate-restriction"  # a very-low-carbohydrate diet


@dataclass(frozen=True)
class Statement:
    """A recommendation or warning: a stable id (for cards, feedback, tests), its text and source,
    and the claims it makes (for the guardrails)."""

    id: str
    text: str
    source: str
    claims: frozenset[Claim] = frozenset()


@dataclass(frozen=True)
class MissingInput:
    field: str
    needed_for: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.field}: needed for {', '.join(self.needed_for)}"


@dataclass
class Findings:
    """Collects statements while the rules run; ``assess`` freezes it into the Assessment."""

    recommendations: list[Statement] = field(default_factory=list)
    warnings: list[Statement] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)

    def recommend(self, id: str, text: str, source: str, *claims: Claim) -> None:
        self.recommendations.append(Statement(id, text, source, frozenset(claims)))

    def warn(self, id: str, text: str, source: str, *claims: Claim) -> None:
        self.warnings.append(Statement(id, text, source, frozenset(claims)))

    def need(self, field_name: str, purpose: str) -> None:
        purposes = self.missing.setdefault(field_name, [])
        if purpose not in purposes:
            purposes.append(purpose)

    def missing_inputs(self) -> tuple[MissingInput, ...]:
        return tuple(MissingInput(name, tuple(purposes)) for name, purposes in self.missing.items())


@dataclass(frozen=True)
class ScoreResult:
    agatston: float
    date: date
    band: str
    fine_band: str
    cac_drs: str
    vessels_with_calcium: int | None
    stage: int | None
    arterial_age: float | None


@dataclass(frozen=True)
class PercentileResult:
    value: float
    estimated: bool
    reference: str


@dataclass(frozen=True)
class RiskResult:
    mesa_chd_10y_with_cac: float | None
    mesa_chd_10y_without_cac: float | None
    pce_ascvd_10y: float | None
    pce_band: str | None


class ProgressionCategory(StrEnum):
    STILL_ZERO = "still-zero"
    INCIDENT = "incident"
    PROGRESSION = "progression"
    POSSIBLE_PROGRESSION = "possible-progression"
    WITHIN_VARIABILITY = "within-variability"
    DECREASE = "decrease"


@dataclass(frozen=True)
class Progression:
    prior_agatston: float
    prior_date: date
    years: float
    annualized_change: float
    annualized_percent: float | None
    sqrt_delta: float
    significant: bool
    category: ProgressionCategory
    rapid: bool
    on_statin: bool | None
    interpretation: str
    source: str


@dataclass(frozen=True)
class NextScan:
    earliest: date | None
    suggested: date | None
    rationale: str
    source: str


class MetabolicState(StrEnum):
    ACTIVE = "active"
    CALM = "calm"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MarkerStatus:
    marker: str
    value: float
    unit: str
    target: str
    on_target: bool


@dataclass(frozen=True)
class Metabolic:
    state: MetabolicState
    markers: tuple[MarkerStatus, ...]

    def off_target(self, *names: str) -> list[MarkerStatus]:
        return [m for m in self.markers if not m.on_target and (not names or m.marker in names)]


@dataclass(frozen=True)
class PatientExplanation:
    """Plain language in the sections a reader looks for (REFERENCE §11): what the scan measures and
    what it does not, what the result means for this person, the plan, what to discuss and ask."""

    headline: str
    measures: tuple[str, ...]
    meaning: tuple[str, ...]
    plan: tuple[str, ...]
    to_discuss: tuple[str, ...]
    questions: tuple[str, ...]
    source: str
    # With symptoms: what to do about them, read before anything else (REFERENCE §14.1).
    safety: tuple[str, ...] = ()

    @property
    def paragraphs(self) -> tuple[str, ...]:
        """The explanation as one text (CarePlan note, summary JSON), in reading order."""
        return self.safety + self.measures + self.meaning + self.plan


@dataclass(frozen=True)
class Assessment:
    patient_id: str | None
    as_of: date
    policy: Policy
    score: ScoreResult
    percentile: PercentileResult | None
    risk: RiskResult
    progression: Progression | None
    next_scan: NextScan
    metabolic: Metabolic
    recommendations: tuple[Statement, ...]
    warnings: tuple[Statement, ...]
    lifestyle: tuple[Statement, ...]
    explanation: PatientExplanation
    missing: tuple[MissingInput, ...]
    # Symptoms are recorded: the result is not a screening result (REFERENCE §14.1); cards warn.
    symptoms_first: bool = False

    def claims(self) -> frozenset[Claim]:
        """Every claim the recommendations make (what the order hooks and the CarePlan read)."""
        return frozenset(claim for r in self.recommendations for claim in r.claims)
