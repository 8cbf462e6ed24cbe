"""Property-based: whatever a client sends as calculator input, the answer is a summary or a named
InvalidInput, never a crash, and the clinical invariants hold on every summary."""

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircac.calc_input import calculate
from fhircac.clinical.errors import InvalidInput

TODAY = date(2026, 3, 1)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(["12", "5.2 mmol/L", "abc", "", "1e400", "-0", "0.8 g/L", "7 furlongs"]),
)
plausible = st.floats(min_value=0, max_value=3000, allow_nan=False)
flags = st.sampled_from([True, False, None, "yes", "no", "unknown", "maybe", 1])
dates = st.one_of(
    st.dates(min_value=date(1990, 1, 1), max_value=date(2026, 3, 1)).map(date.isoformat),
    st.sampled_from(["2026-02-30", "yesterday", "2030-01-01"]),
)
anything = st.one_of(numbers, flags, dates, st.text(max_size=5), st.lists(st.integers(), max_size=2))

KEYS = [
    "age",
    "sex",
    "race",
    "cac",
    "date",
    "vessels",
    "percentile",
    "prior_cac",
    "prior_date",
    "statin",
    "lipid_lowering",
    "bp_treated",
    "diabetes",
    "smoker",
    "family_history",
    "known_cad",
    "symptoms",
    "bleeding_risk",
    "tc",
    "hdl",
    "ldl",
    "tg",
    "sbp",
    "apob",
    "crp",
    "insulin",
    "hba1c",
    "lpa",
    "lpa_unit",
    "policy",
    "as_of",
    "bogus",
]

wild_inputs = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), anything, max_size=12),
    st.lists(st.integers(), max_size=3),
    st.none(),
    st.text(max_size=10),
)
realistic_inputs = st.fixed_dictionaries(
    {"cac": plausible},
    optional={
        "age": st.integers(20, 100),
        "sex": st.sampled_from(["female", "male"]),
        "race": st.sampled_from(["white", "black", "hispanic", "chinese", "other"]),
        "prior_cac": plausible,
        "prior_date": st.sampled_from(["2019-05-01", "2022-02-01", "2025-06-30"]),
        "statin": flags,
        "diabetes": flags,
        "smoker": flags,
        "family_history": flags,
        "bp_treated": flags,
        "tc": st.integers(130, 320),
        "hdl": st.integers(20, 100),
        "sbp": st.integers(90, 200),
        "crp": st.floats(0, 20),
        "apob": st.integers(40, 200),
        "tg": st.integers(40, 600),
        "insulin": st.floats(1, 40),
        "lpa": st.integers(0, 300),
        "lpa_unit": st.sampled_from(["mg/dL", "nmol/L"]),
        "policy": st.sampled_from(["acc-aha-2018", "lifestyle-first"]),
        "known_cad": flags,
        "symptoms": flags,
        "bleeding_risk": flags,
    },
).map(lambda d: {**d, "date": "2026-01-15"})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wild_inputs)
def test_wild_input_never_crashes(data: object) -> None:
    try:
        summary = calculate(data, TODAY)
    except InvalidInput as error:
        assert error.problems and all(p.field and p.message for p in error.problems)
    else:
        assert summary["score"]["band"] in {"0", "1-99", "100-399", "≥400"}


@settings(max_examples=400, deadline=None)
@given(realistic_inputs)
def test_invariants_on_realistic_input(data: dict) -> None:  # type: ignore[type-arg]
    try:
        summary = calculate(data, TODAY)
    except InvalidInput as error:  # e.g. a prior scan not before the current one, or an unknown flag value
        assert error.problems
        return
    earliest = summary["next_scan"]["earliest"]
    if earliest is not None:  # never sooner than 3 years after the scan
        assert earliest >= "2029-01-15"
    for risk in summary["risk"].values():
        assert risk is None or isinstance(risk, str) or 0 <= risk <= 1
    progression = summary["progression"]
    if progression and progression["on_statin"]:
        assert "failure" not in progression["interpretation"].lower()
    for statement in summary["recommendations"] + summary["warnings"] + summary["lifestyle"]:
        assert statement["source"]
    assert summary["explanation"]["headline"].count("emergency") == summary["explanation"]["headline"].count(
        "not an emergency"
    )
