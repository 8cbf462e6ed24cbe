"""Named, versioned policies: how fhircac resolves the places where its sources disagree.

Every output records the policy id and version it was made under (REFERENCE §1). Rules shared
by both policies (score interpretation, the statin context of progression, known coronary
disease, work-up, communication) live in their topic modules unconditionally; rules that differ
(therapy, aspirin, repeat-scan timing, lifestyle plan) branch on ``Policy.id`` in those modules.
Whatever a policy's rules say then passes through the guardrails (``guardrails.py``, REFERENCE
§14), which no policy can opt out of; a policy added to ``POLICIES`` is held to them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fhircac.clinical.errors import InvalidInput


class PolicyId(StrEnum):
    ACC_AHA_2018 = "acc-aha-2018"
    LIFESTYLE_FIRST = "lifestyle-first"


@dataclass(frozen=True)
class Policy:
    id: PolicyId
    version: str
    title: str
    basis: str
    # The policy's advice depends on source 002's metabolic state, so absent markers are "missing".
    uses_metabolic_state: bool = False


ACC_AHA_2018 = Policy(
    id=PolicyId.ACC_AHA_2018,
    version="1.0.0",
    title="ACC/AHA 2018-2019 guideline CAC statements",
    basis=(
        "2018 AHA/ACC cholesterol guideline and 2019 ACC/AHA primary prevention guideline CAC "
        "statements, CAC-DRS 2018, REFERENCE §6 repeat-scan guidance, interpretation rules of "
        "sources 000, 003, 004"
    ),
)
LIFESTYLE_FIRST = Policy(
    id=PolicyId.LIFESTYLE_FIRST,
    version="1.0.0",
    title="Lifestyle-first (score band × metabolic state)",
    basis="source 002: score band × metabolic state advice, its aspirin criteria and its annual targets",
    uses_metabolic_state=True,
)

POLICIES: dict[str, Policy] = {p.id.value: p for p in (ACC_AHA_2018, LIFESTYLE_FIRST)}
DEFAULT_POLICY = ACC_AHA_2018


def get_policy(policy_id: str | None) -> Policy:
    if policy_id is None:
        return DEFAULT_POLICY
    try:
        return POLICIES[policy_id]
    except KeyError:
        known = ", ".join(POLICIES)
        raise InvalidInput.single("policy", f"unknown policy {policy_id!r}; known: {known}") from None
