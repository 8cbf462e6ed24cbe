"""Facts derived once per assessment and shared by the therapy, follow-up, lifestyle and narrative rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhircac.clinical.assessment import Metabolic, PercentileResult, Progression
from fhircac.clinical.policies import Policy
from fhircac.clinical.record import CacScan, DrugClass, PatientRecord

HIGH_PERCENTILE = 75.0  # ≥75th percentile counts like CAC ≥100 for statins (REFERENCE §7)
DIABETES_HBA1C_PERCENT = 6.5  # ADA diagnostic threshold (48 mmol/mol), REFERENCE §14.5


@dataclass(frozen=True)
class Context:
    record: PatientRecord
    policy: Policy
    as_of: date
    scan: CacScan
    age_at_scan: float | None
    age_now: float | None
    percentile: PercentileResult | None
    progression: Progression | None
    metabolic: Metabolic
    pce_ascvd_10y: float | None

    @property
    def agatston(self) -> float:
        return self.scan.agatston

    @property
    def on_statin(self) -> bool:
        return self.record.taking(DrugClass.STATIN, self.as_of)

    @property
    def high_percentile(self) -> bool:
        return self.percentile is not None and self.percentile.value >= HIGH_PERCENTILE

    @property
    def symptomatic(self) -> bool:
        return bool(self.record.symptoms)

    @property
    def possible_diabetes(self) -> bool:
        """HbA1c ≥6.5 % with no diabetes recorded: diabetes is possible, so not "no" (REFERENCE §14.5)."""
        hba1c = self.record.labs.hba1c
        return not self.record.diabetes and hba1c is not None and hba1c.value >= DIABETES_HBA1C_PERCENT

    @property
    def diabetes_possible_or_known(self) -> bool:
        return bool(self.record.diabetes) or self.possible_diabetes

    def higher_risk_conditions(self) -> list[str]:
        """The conditions under which CAC 0 does not license withholding a statin (REFERENCE §7)."""
        record = self.record
        named = {
            "diabetes": record.diabetes,
            "possible diabetes (HbA1c ≥6.5%)": self.possible_diabetes,
            "current smoking": record.current_smoker,
            "family history of premature coronary disease": record.family_history_premature_chd,
        }
        return [name for name, present in named.items() if present]
