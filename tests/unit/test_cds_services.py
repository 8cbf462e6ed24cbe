"""CDS Hooks services in-process (auth off here; tests/unit/test_cds_http.py covers auth).

Cards are checked against the spec's rules and against what the clinical core says for the same
patient, so a card can never say more (or other) than the assessment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fhircac.cdshooks.cards import Action, Card, Coding, Link, Source, Suggestion, shorten
from fhircac.cdshooks.prefetch import TEMPLATES, BadPrefetch, PrefetchUnavailable, gather, render
from fhircac.config import Settings
from fhircac.fhir import codes
from fhircac.web.app import create_app
from tests import cds_builders as cb
from tests import fhir_builders as fb

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CDS_EXAMPLES = EXAMPLES / "cds-hooks"
VIEW_KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
VIEW_KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
ORDER_KEYS = VIEW_KEYS[:-1]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def example(name: str) -> list[dict[str, Any]]:
    bundle = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle["entry"]]


def patient_id(resources: list[dict[str, Any]]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


@pytest.fixture
def client(tmp_path: Path) -> Any:
    app = create_app(Settings(cds_auth=False, cds_db=str(tmp_path / "cds.sqlite")))
    return app.test_client()


def post(client: Any, service: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post(f"/cds-services/{service}", json=body)
    return response.status_code, response.get_json()


def assert_spec_card(card: dict[str, Any]) -> None:
    """CDS Hooks 2.0 §Card and its FHIRPath invariants, as a client would check them."""
    assert UUID.match(card["uuid"])
    assert 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning")  # fhircac never sends critical
    assert card["source"]["label"]
    assert card["source"]["url"].startswith("http")
    assert {"system", "code"} <= set(card["source"]["topic"])
    assert card.get("detail", "x")
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card["suggestions"]:
            assert UUID.match(suggestion["uuid"]) and suggestion["label"]
            for action in suggestion["actions"]:
                assert action["description"]
                if action["type"] == "delete":
                    assert "resource" not in action and "/" in action["resourceId"]
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons", []):
        assert reason["display"] and reason["system"] == codes.OVERRIDE_REASON
    for value in card.values():
        assert value not in (None, "", [], {})  # JSON rules: absent, never empty


# --- discovery -------------------------------------------------------------------------------------


def test_discovery_lists_three_services_with_2_0_valid_prefetch(client: Any) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.get_json()["services"]}
    assert {k: s["hook"] for k, s in services.items()} == {
        "cac-patient-view": "patient-view",
        "cac-order-select": "order-select",
        "cac-order-sign": "order-sign",
    }
    for service in services.values():
        assert service["title"] and service["description"] and service["usageRequirements"]
        for template in service["prefetch"].values():
            # 2.0 tokens only: root-level context fields, no FHIRPath (that is 3.0-ballot).
            assert set(re.findall(r"\{\{([^}]*)\}\}", template)) == {"context.patientId"}
    assert set(services["cac-patient-view"]["prefetch"]) == set(VIEW_KEYS)
    assert set(services["cac-order-sign"]["prefetch"]) == set(ORDER_KEYS)


# --- patient-view ------------------------------------------------------------------------------


def test_patient_view_summarises_score_band_drs_percentile_and_risk(client: Any) -> None:
    resources = example("04-cac-100-399-above-75th.json")
    expected = json.loads((EXAMPLES / "expected" / "04-cac-100-399-above-75th.summary.json").read_text())
    status, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    assert status == 200
    for card in body["cards"]:
        assert_spec_card(card)
    summary = next(c for c in body["cards"] if c["source"]["topic"]["code"] == "cac-risk-assessment")
    score = expected["score"]
    assert f"CAC {score['agatston']:g}" in summary["summary"]
    assert f"band {score['band']}" in summary["summary"] and score["cac_drs"] in summary["summary"]
    assert f"{round(expected['percentile']['value'])}" in summary["summary"]
    risk = expected["risk"]["mesa_chd_10y_with_cac"]
    assert f"{risk * 100:.1f}%" in summary["summary"]
    # What to consider and when to rescan, each with its rule and source.
    for statement in expected["recommendations"]:
        assert f"rule `{statement['id']}`" in summary["detail"]
    assert "**Repeat scan:**" in summary["detail"] and expected["next_scan"]["earliest"] in summary["detail"]
    assert summary["indicator"] == "info"
    # How the record was read: the summary's inputs, the same lines as the report page.
    from fhircac.clinical.inputs import describe

    assert "**How the record was read:**" in summary["detail"]
    for line in describe(expected["inputs"]):
        assert line.split(":")[0] in summary["detail"]


def test_a_rise_on_a_statin_is_read_as_expected_not_failure(client: Any) -> None:
    resources = example("06-rising-on-statin.json")
    status, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    assert status == 200
    summary = body["cards"][0]
    assert "rise on a statin is expected" in summary["summary"]
    lead = "Rise on a statin: expected; not by itself a sign that the treatment is failing."
    assert lead in summary["detail"]
    assert "does not by itself mean that the treatment is failing" in summary["detail"]
    assert "failure" not in summary["detail"]


def test_a_rise_without_a_statin_gets_no_statin_message(client: Any) -> None:
    resources = example("07-rapid-rise-no-statin.json")
    _, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    assert "statin" not in body["cards"][0]["summary"]
    assert "Rise on a statin" not in body["cards"][0]["detail"]


def test_high_score_is_info_not_an_emergency(client: Any) -> None:
    resources = example("05-cac-400-metabolically-calm.json")
    _, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    assert body["cards"] and all(c["indicator"] == "info" for c in body["cards"])
    assert all("emergency" not in c["summary"].lower() for c in body["cards"])


def test_care_plan_suggestion_creates_the_interpretation_and_the_plan(client: Any) -> None:
    resources = example("04-cac-100-399-above-75th.json")
    _, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    suggestion = body["cards"][0]["suggestions"][0]
    assessment, plan = (a["resource"] for a in suggestion["actions"])
    assert [a["type"] for a in suggestion["actions"]] == ["create", "create"]
    assert (assessment["resourceType"], plan["resourceType"]) == ("RiskAssessment", "CarePlan")
    # The EHR assigns ids, so the plan names the interpretation by its identifier, not a urn:uuid.
    assert plan["supportingInfo"] == [
        {
            "type": "RiskAssessment",
            "identifier": assessment["identifier"][0],
            "display": "fhircac CAC interpretation",
        }
    ]
    assert plan["intent"] == "proposal" and plan["subject"] == {
        "reference": f"Patient/{patient_id(resources)}"
    }


def test_no_care_plan_suggestion_when_the_plan_already_exists(client: Any) -> None:
    resources = example("04-cac-100-399-above-75th.json")
    first = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )[1]
    plan = first["cards"][0]["suggestions"][0]["actions"][1]["resource"]
    existing = {**plan, "id": "plan-1"}
    _, again = post(
        client,
        "cac-patient-view",
        cb.request("patient-view", patient_id(resources), [*resources, existing], VIEW_KEYS),
    )
    assert "suggestions" not in again["cards"][0]


def test_lpa_once_card_only_when_lpa_never_measured_and_score_high(client: Any) -> None:
    high = [fb.patient(), fb.cac(value=250), fb.lab("2093-3", 200, "mg/dL", id="tc")]
    _, body = post(client, "cac-patient-view", cb.request("patient-view", "p1", high, VIEW_KEYS))
    lpa = [c for c in body["cards"] if c["source"]["topic"]["code"] == "lpa-measure-once"]
    assert len(lpa) == 1
    order = lpa[0]["suggestions"][0]["actions"][0]["resource"]
    assert order["resourceType"] == "ServiceRequest" and order["status"] == "draft"
    assert order["code"]["coding"][0]["code"] in {
        code for code, analyte in codes.LAB_CODES.items() if analyte == "lpa"
    }
    measured = [*high, fb.lab("43583-4", 30, "nmol/L", id="lpa")]
    _, again = post(client, "cac-patient-view", cb.request("patient-view", "p1", measured, VIEW_KEYS))
    assert not [c for c in again["cards"] if c["source"]["topic"]["code"] == "lpa-measure-once"]
    low = [fb.patient(), fb.cac(value=40)]
    _, low_body = post(client, "cac-patient-view", cb.request("patient-view", "p1", low, VIEW_KEYS))
    assert not [c for c in low_body["cards"] if c["source"]["topic"]["code"] == "lpa-measure-once"]


def test_no_cac_score_means_no_cards(client: Any) -> None:
    status, body = post(
        client, "cac-patient-view", cb.request("patient-view", "p1", [fb.patient()], VIEW_KEYS)
    )
    assert (status, body) == (200, {"cards": []})


def test_unusable_cac_data_gives_an_explaining_card_not_silence(client: Any) -> None:
    resources = [fb.patient(), fb.cac(value=120, unit_code="mg")]
    status, body = post(client, "cac-patient-view", cb.request("patient-view", "p1", resources, VIEW_KEYS))
    assert status == 200
    (card,) = body["cards"]
    assert_spec_card(card)
    assert "could not be interpreted" in card["summary"] and "mg" in card["detail"]


def test_operation_outcome_in_prefetch_is_missing_data_and_said(client: Any) -> None:
    resources = example("04-cac-100-399-above-75th.json")
    body = cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    body["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "no access to problems"}],
    }
    status, answer = post(client, "cac-patient-view", body)
    assert status == 200
    detail = answer["cards"][0]["detail"]
    assert "prefetch conditions: the EHR could not provide it" in detail and "no access to problems" in detail
    assert "known\\_cad" in detail  # the core names what the missing conditions leave unknown


def test_null_prefetch_is_no_data_not_missing(client: Any) -> None:
    resources = [fb.patient(), fb.cac(value=120)]
    body = cb.request("patient-view", "p1", resources, VIEW_KEYS)
    for key in ("observations", "conditions", "procedures", "familyHistory", "medicationRequests"):
        body["prefetch"][key] = None
    status, answer = post(client, "cac-patient-view", body)
    assert status == 200 and answer["cards"]


@pytest.mark.parametrize("key", ["patient", "cacScores"])
def test_missing_essential_prefetch_without_fhir_server_is_412_naming_the_key(client: Any, key: str) -> None:
    resources = [fb.patient(), fb.cac(value=120)]
    body = cb.request("patient-view", "p1", resources, VIEW_KEYS)
    del body["prefetch"][key]
    response = client.post("/cds-services/cac-patient-view", json=body)
    assert response.status_code == 412
    issue = response.get_json()["issue"][0]
    assert issue["code"] == "processing" and key in issue["expression"][0]
    assert "no fhirServer" in issue["diagnostics"]


@pytest.mark.parametrize("key", ["conditions", "familyHistory", "cacCarePlans", "medicationStatements"])
def test_missing_context_prefetch_without_fhir_server_degrades_and_says_so(client: Any, key: str) -> None:
    """A client MAY honour some of the templates only: a card that names what it lacks, not a 412."""
    resources = [fb.patient(), fb.cac(value=120)]
    body = cb.request("patient-view", "p1", resources, VIEW_KEYS)
    del body["prefetch"][key]
    status, answer = post(client, "cac-patient-view", body)
    assert status == 200 and answer["cards"]
    summary = answer["cards"][0]
    assert key in summary["detail"] and "no fhirServer" in summary["detail"]
    if key == "cacCarePlans":  # a plan may exist that fhircac cannot see: no CarePlan suggestion
        assert "suggestions" not in summary


def test_paginated_prefetch_without_fhir_server_is_412(client: Any) -> None:
    resources = [fb.patient(), fb.cac(value=120)]
    body = cb.request("patient-view", "p1", resources, VIEW_KEYS)
    body["prefetch"]["cacScores"]["link"] = [{"relation": "next", "url": "https://ehr.test/fhir?page=2"}]
    assert client.post("/cds-services/cac-patient-view", json=body).status_code == 412


def test_prefetch_for_another_patient_is_not_used(client: Any) -> None:
    resources = [
        fb.patient(id="someone-else"),
        fb.cac(value=120, subject={"reference": "Patient/someone-else"}),
    ]
    body = cb.request("patient-view", "p1", resources, VIEW_KEYS)
    status, answer = post(client, "cac-patient-view", body)
    assert status == 200
    (card,) = answer["cards"]
    assert "could not be interpreted" in card["summary"] and "p1" in card["detail"]


# --- order-select / order-sign -----------------------------------------------------------------


def order_cards(
    client: Any, service: str, resources: list[dict[str, Any]], orders: list[dict[str, Any]], **kw: Any
) -> list[dict[str, Any]]:
    hook = service.removeprefix("cac-")
    body = cb.request(hook, patient_id(resources), resources, ORDER_KEYS, draft_orders=orders, **kw)
    status, answer = post(client, service, body)
    assert status == 200, answer
    for card in answer["cards"]:
        assert_spec_card(card)
    return answer["cards"]


def test_order_sign_warns_on_a_scan_sooner_than_3_years_with_a_removal(client: Any) -> None:
    resources = example("03-cac-1-99-over-55.json")
    pid = patient_id(resources)
    cards = order_cards(
        client, "cac-order-sign", resources, [cb.scan_order(patient_id=pid, when="2027-01-01")]
    )
    (card,) = cards
    assert card["indicator"] == "warning" and card["source"]["topic"]["code"] == "scan-order-too-soon"
    assert "earliest sensible date" in card["summary"] and "REFERENCE §6" in card["detail"]
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft CAC scan order",
            "resourceId": "ServiceRequest/draft-cac",
        }
    ]
    assert {r["code"] for r in card["overrideReasons"]} >= {"other-indication", "clinical-judgement"}


def test_a_draft_with_a_non_fhir_id_costs_only_its_removal_suggestion(client: Any) -> None:
    """One malformed order (another EHR module's) must not reject the call or cost the CAC warning."""
    resources = example("03-cac-1-99-over-55.json")
    pid = patient_id(resources)
    unrelated = {"resourceType": "MedicationRequest", "id": "urn:uuid:5b3c", "status": "draft"}
    scan = cb.scan_order("urn:uuid:9f1e", pid, "2027-01-01")
    cards = order_cards(client, "cac-order-sign", resources, [unrelated, scan])
    (card,) = cards
    assert card["source"]["topic"]["code"] == "scan-order-too-soon" and "suggestions" not in card
    (fine,) = order_cards(
        client, "cac-order-sign", resources, [unrelated, cb.scan_order(patient_id=pid, when="2027-01-01")]
    )
    assert fine["suggestions"][0]["actions"][0]["resourceId"] == "ServiceRequest/draft-cac"


def test_every_card_source_url_points_at_an_anchor_of_the_rules_page(client: Any) -> None:
    page = client.get("/rules").get_data(as_text=True)
    anchors = set(re.findall(r"id='([^']+)'", page))
    urls = []
    for path in sorted(CDS_EXAMPLES.glob("*.json")):
        body = json.loads(path.read_text())
        service = "cac-patient-view" if body["hook"] == "patient-view" else f"cac-{body['hook']}"
        status, answer = post(client, service, body)
        assert status == 200
        urls += [card["source"]["url"] for card in answer["cards"]]
    bad = cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=-5)], VIEW_KEYS)
    urls += [card["source"]["url"] for card in post(client, "cac-patient-view", bad)[1]["cards"]]
    assert any(url.endswith("#data") for url in urls)
    assert {url.split("#", 1)[1] for url in urls} <= anchors


def test_order_sign_is_quiet_for_a_scan_after_the_earliest_date(client: Any) -> None:
    resources = example("03-cac-1-99-over-55.json")
    orders = [cb.scan_order(patient_id=patient_id(resources), when="2031-06-01")]
    assert order_cards(client, "cac-order-sign", resources, orders) == []


def test_high_score_and_known_disease_warnings(client: Any) -> None:
    high = example("05-cac-400-metabolically-calm.json")
    cards = order_cards(
        client, "cac-order-sign", high, [cb.scan_order(patient_id=patient_id(high), when="2035-01-01")]
    )
    assert [c["source"]["topic"]["code"] for c in cards] == ["scan-order-high-score"]
    cad = example("08-known-cad-stent.json")
    cards = order_cards(
        client, "cac-order-sign", cad, [cb.scan_order(patient_id=patient_id(cad), when="2035-01-01")]
    )
    assert [c["source"]["topic"]["code"] for c in cards] == ["scan-order-known-cad"]
    assert "REFERENCE §9" in cards[0]["detail"]


def test_order_select_looks_only_at_the_selected_orders(client: Any) -> None:
    resources = example("03-cac-1-99-over-55.json")
    pid = patient_id(resources)
    orders = [cb.scan_order("a", pid, "2027-01-01"), cb.scan_order("b", pid, "2027-02-01")]
    cards = order_cards(client, "cac-order-select", resources, orders, selections=["ServiceRequest/b"])
    assert [c["suggestions"][0]["actions"][0]["resourceId"] for c in cards] == ["ServiceRequest/b"]
    assert (
        order_cards(client, "cac-order-select", resources, orders, selections=["MedicationRequest/x"]) == []
    )


def test_scan_orders_are_recognised_by_code_or_text_not_by_accident(client: Any) -> None:
    resources = example("03-cac-1-99-over-55.json")
    pid = patient_id(resources)
    by_loinc = cb.scan_order("l", pid, "2027-01-01")
    by_loinc["code"] = {"coding": [{"system": codes.LOINC, "code": "79087-3"}]}
    by_text = cb.scan_order("t", pid, "2027-01-01")
    by_text["code"] = {"text": "Coronary calcium scoring CT (Agatston)"}
    unrelated = cb.scan_order("u", pid, "2027-01-01")
    unrelated["code"] = {"text": "Cachexia work-up: CT abdomen"}
    cards = order_cards(client, "cac-order-sign", resources, [by_loinc, by_text, unrelated])
    assert sorted(c["suggestions"][0]["actions"][0]["resourceId"] for c in cards) == [
        "ServiceRequest/l",
        "ServiceRequest/t",
    ]


def test_aspirin_order_gets_what_the_policy_requires(client: Any) -> None:
    low = example("03-cac-1-99-over-55.json")
    (card,) = order_cards(client, "cac-order-sign", low, [cb.aspirin_order(patient_id=patient_id(low))])
    assert card["indicator"] == "warning" and "criteria not met" in card["summary"]
    assert "**What the policy requires:**" in card["detail"] and "CAC ≥100" in card["detail"]
    assert "suggestions" not in card  # aspirin may serve another purpose the rule does not see
    assert "stroke or peripheral artery disease" in card["detail"]
    high = example("04-cac-100-399-above-75th.json")
    (card,) = order_cards(client, "cac-order-sign", high, [cb.aspirin_order(patient_id=patient_id(high))])
    assert card["indicator"] == "info" and "may be considered" in card["summary"]
    assert "suggestions" not in card  # nothing to undo when the policy allows it


def test_unavailable_problem_list_never_reads_as_no_disease(client: Any) -> None:
    """An EHR that cannot send conditions and procedures must not turn a stent patient into a
    primary-prevention aspirin candidate (REFERENCE §7, §9)."""
    cad = example("08-known-cad-stent.json")
    pid = patient_id(cad)
    body = cb.request(
        "order-sign",
        pid,
        cad,
        ORDER_KEYS,
        draft_orders=[cb.scan_order(patient_id=pid, when="2027-03-01"), cb.aspirin_order(patient_id=pid)],
    )
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    body["prefetch"]["conditions"] = body["prefetch"]["procedures"] = outcome
    status, answer = post(client, "cac-order-sign", body)
    assert status == 200
    topics = [c["source"]["topic"]["code"] for c in answer["cards"]]
    assert not any(t.startswith("aspirin") for t in topics)
    assert all(
        "Could not be checked" in c["detail"] and "coronary history" in c["detail"] for c in answer["cards"]
    )


def test_no_aspirin_card_without_a_cac_score(client: Any) -> None:
    resources = [fb.patient(), fb.condition("38341003", id="htn")]
    body = cb.request("order-sign", "p1", resources, ORDER_KEYS, draft_orders=[cb.aspirin_order()])
    assert post(client, "cac-order-sign", body) == (200, {"cards": []})


def test_aspirin_for_known_coronary_disease_is_not_primary_prevention(client: Any) -> None:
    cad = example("08-known-cad-stent.json")
    assert order_cards(client, "cac-order-sign", cad, [cb.aspirin_order(patient_id=patient_id(cad))]) == []


def test_aspirin_recognised_through_a_medication_in_the_draft_bundle(client: Any) -> None:
    low = example("03-cac-1-99-over-55.json")
    order = cb.aspirin_order(patient_id=patient_id(low))
    del order["medicationCodeableConcept"]
    order["medicationReference"] = {"reference": "Medication/asa"}
    medication = {
        "resourceType": "Medication",
        "id": "asa",
        "code": {"coding": [{"system": codes.ATC, "code": "B01AC06"}]},
    }
    cards = order_cards(client, "cac-order-sign", low, [order, medication])
    assert [c["source"]["topic"]["code"] for c in cards] == ["aspirin-policy-acc-aha-2018"]


def test_orders_without_a_cac_or_aspirin_order_need_no_data(client: Any) -> None:
    other = cb.scan_order("x", "p1")
    other["code"] = {"coding": [{"system": codes.LOINC, "code": "2093-3"}]}
    body = cb.request("order-sign", "p1", draft_orders=[other])  # no prefetch, no fhirServer
    assert post(client, "cac-order-sign", body) == (200, {"cards": []})


# --- cards and prefetch helpers ---------------------------------------------------------------------


def test_shorten_cuts_at_a_word_and_marks_the_cut() -> None:
    text = "word " * 60
    cut = shorten(text)
    assert len(cut) <= 139 and cut.endswith("…") and not cut.endswith(" …")
    assert shorten("short") == "short"


def test_cards_refuse_what_the_spec_forbids() -> None:
    source = Source("fhircac")
    with pytest.raises(ValueError, match="summary"):
        Card("k", "x" * 140, "info", source)
    with pytest.raises(ValueError, match="selectionBehavior"):
        Card("k", "s", "info", source, suggestions=(Suggestion("l", "k", ()),))
    with pytest.raises(ValueError, match="display"):
        Card("k", "s", "info", source, override_reasons=(Coding("sys", "code"),))
    with pytest.raises(ValueError, match="resourceId"):
        Action("delete", "remove", resource={"resourceType": "ServiceRequest"})
    with pytest.raises(ValueError, match="description"):
        Action("create", "", resource={})
    with pytest.raises(ValueError, match="appContext"):
        Link("l", "https://x", "absolute", app_context="ctx")
    two = (Suggestion("a", "k", (), is_recommended=True), Suggestion("b", "k", (), is_recommended=True))
    with pytest.raises(ValueError, match="recommended"):
        Card("k", "s", "info", source, suggestions=two, selection_behavior="at-most-one")


def test_render_quotes_context_values_and_refuses_unresolved_tokens() -> None:
    assert render(TEMPLATES["patient"], {"patientId": "a.b-1"}) == "Patient/a.b-1"
    assert (
        render("Observation?patient={{context.patientId}}", {"patientId": "x&y"})
        == "Observation?patient=x%26y"
    )
    with pytest.raises(ValueError, match="unresolved"):
        render(TEMPLATES["patient"], {})


def test_gather_takes_prefetch_and_fetches_only_what_is_absent() -> None:
    fetched: list[str] = []

    class FakeFhir:
        def read(self, resource_type: str, id: str) -> dict[str, Any]:
            fetched.append(f"{resource_type}/{id}")
            return {"resourceType": resource_type, "id": id}

        def search(self, resource_type: str, params: list[tuple[str, str]]) -> Any:
            fetched.append(f"{resource_type}?{dict(params)['patient']}")
            yield {"resourceType": "Bundle", "type": "searchset"}

    gathered = gather(
        ("patient", "conditions", "procedures"),
        {"conditions": None},
        {"patientId": "p1"},
        lambda: FakeFhir(),  # type: ignore[return-value,arg-type]
    )
    assert fetched == ["Patient/p1", "Procedure?p1"]
    assert gathered.fetched == ["patient", "procedures"] and gathered.resources["conditions"] == []
    with pytest.raises(PrefetchUnavailable) as missing:
        gather(("patient",), {}, {"patientId": "p1"}, lambda: None)
    assert missing.value.key == "patient"
    with pytest.raises(BadPrefetch, match="entry"):
        gather(
            ("conditions",),
            {"conditions": {"resourceType": "Bundle", "entry": {"x": 1}}},
            {"patientId": "p"},
            lambda: None,
        )


# --- examples/cds-hooks --------------------------------------------------------------------------

EXPECTED_ORDER_CARDS = {
    "03-cac-1-99-over-55.order-sign.json": ["scan-order-too-soon", "aspirin-policy-acc-aha-2018"],
    "05-cac-400-metabolically-calm.order-sign.json": ["scan-order-too-soon", "scan-order-high-score"],
    "08-known-cad-stent.order-sign.json": ["scan-order-known-cad"],
}


def test_cds_examples_are_what_the_generator_writes() -> None:
    import subprocess
    import sys

    script = EXAMPLES.parent / "tools" / "make_cds_examples.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cds_example_replays(client: Any) -> None:
    files = sorted((EXAMPLES / "cds-hooks").glob("*.json"))
    assert len(files) == 15
    for path in files:
        body = json.loads(path.read_text(encoding="utf-8"))
        status, answer = post(client, f"cac-{body['hook']}", body)
        assert status == 200, (path.name, answer)
        for card in answer["cards"]:
            assert_spec_card(card)
        topics = [card["source"]["topic"]["code"] for card in answer["cards"]]
        if body["hook"] == "patient-view":
            assert topics[0] == "cac-risk-assessment", path.name
        else:
            assert topics == EXPECTED_ORDER_CARDS[path.name], (path.name, topics)


def test_fetching_stops_at_a_page_cap_and_at_the_deadline() -> None:
    import time

    class EndlessFhir:
        def search(self, resource_type: str, params: Any) -> Any:
            while True:  # a server whose next link always points to a new page
                yield {"resourceType": "Bundle", "type": "searchset", "entry": []}

    with pytest.raises(PrefetchUnavailable, match="more than 20 pages"):
        gather(("conditions",), {}, {"patientId": "p1"}, lambda: EndlessFhir())  # type: ignore[arg-type,return-value]
    with pytest.raises(PrefetchUnavailable, match="took too long"):
        gather(("conditions",), {}, {"patientId": "p1"}, lambda: EndlessFhir(), time.monotonic() - 1)  # type: ignore[arg-type,return-value]


def test_symptoms_make_the_summary_card_a_warning_led_by_them(client: Any) -> None:
    # review finding 1 / REFERENCE §14.1: chest pain recorded on the CAC 520 example
    resources = example("05-cac-400-metabolically-calm.json")
    pid = patient_id(resources)
    chest_pain = fb.condition("29857009") | {"subject": {"reference": f"Patient/{pid}"}}
    resources = [*resources, chest_pain]
    status, body = post(client, "cac-patient-view", cb.request("patient-view", pid, resources, VIEW_KEYS))
    assert status == 200
    summary = body["cards"][0]
    assert_spec_card(summary)
    assert summary["indicator"] == "warning"
    assert summary["summary"].startswith("Symptoms recorded: evaluate them first.")
    assert summary["detail"].startswith("**Symptoms first:**")
    assert "Risk (for people without symptoms)" in summary["detail"]
    assert "emergency services" in summary["detail"]
    # the aspirin order card reads the same guardrail: never "may be considered" with symptoms
    cards = order_cards(client, "cac-order-sign", resources, [cb.aspirin_order(patient_id=pid)])
    aspirin = next(card for card in cards if "Aspirin" in card["summary"])
    assert aspirin["indicator"] == "warning" and "may be considered" not in aspirin["summary"]
    assert aspirin["summary"] == "Aspirin for primary prevention: no statement while symptoms are evaluated"
    scan = order_cards(
        client, "cac-order-sign", resources, [cb.scan_order(patient_id=pid, when="2030-01-01")]
    )
    assert any(card["summary"].startswith("Symptoms are recorded") for card in scan)


def test_symptoms_with_a_low_score_give_no_primary_prevention_aspirin_verdict(client: Any) -> None:
    # REFERENCE §14.1: with chest pain, an aspirin order is not judged by a CAC threshold ("below
    # this policy's threshold" would advise against aspirin that may serve the symptoms' work-up)
    resources = example("03-cac-1-99-over-55.json")
    pid = patient_id(resources)
    chest_pain = fb.condition("29857009") | {"subject": {"reference": f"Patient/{pid}"}}
    resources = [*resources, chest_pain]
    cards = order_cards(client, "cac-order-sign", resources, [cb.aspirin_order(patient_id=pid)])
    aspirin = next(card for card in cards if "Aspirin" in card["summary"])
    assert aspirin["summary"] == "Aspirin for primary prevention: no statement while symptoms are evaluated"
    assert "below this policy's threshold" not in aspirin["detail"]


def test_a_fast_rise_on_a_statin_is_not_summarised_as_simply_expected(client: Any) -> None:
    # review finding 9: >15 %/year on a statin has been linked with MI (Raggi 2004); the card's
    # one line must not read "expected" alone
    resources = example("06-rising-on-statin.json")
    for resource in resources:
        if resource.get("id") == "cac-ex06-scan-2022":
            resource["valueQuantity"]["value"] = 60  # 60 → 260 over 4 years: about 44 %/year
    status, body = post(
        client, "cac-patient-view", cb.request("patient-view", patient_id(resources), resources, VIEW_KEYS)
    )
    assert status == 200
    summary = body["cards"][0]
    assert "rise on a statin is expected" not in summary["summary"]
    assert "fast rise on a statin" in summary["summary"]
    assert "failure" not in summary["detail"]
