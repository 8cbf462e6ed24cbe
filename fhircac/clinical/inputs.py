"""What was read: the summary's ``inputs`` object, the one view of the record that the JSON summary,
the report's clinician section and the CDS card's "how the record was read" all show.

Contract (fields may be added, none renamed or re-typed; each is ``null`` when unknown):
``sex`` "female"|"male"; ``age`` whole years at the current scan; ``race`` MESA group
(white|black|hispanic|chinese|other); ``statin`` {``at_scan`` bool, ``since`` "YYYY-MM-DD" start of
the course running on the scan date, ``between_scans_share`` 0-1 share of the days between the
previous and the current scan on which a statin was taken}; ``antihypertensive_at_scan``,
``aspirin_at_scan``, ``antithrombotic_at_scan`` (an anticoagulant or P2Y12 inhibitor, not aspirin)
bool; ``diabetes``, ``known_ascvd`` (coronary disease, MI, stent, bypass, ischaemic stroke/TIA,
PAD), ``smoker`` bool; ``ldl_c`` the LDL cholesterol used, mg/dL; ``deceased`` bool.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhircac.clinical.record import DrugClass, PatientRecord

ANTITHROMBOTICS = (DrugClass.ANTICOAGULANT, DrugClass.P2Y12_INHIBITOR)  # aspirin is counted apart
Course = tuple[date | None, date | None]  # None bounds: start not recorded / still taken


def courses(record: PatientRecord, drug_class: DrugClass) -> list[Course]:
    """Periods of one drug class merged where they overlap or follow day to day."""
    spans = sorted(
        ((m.start, m.end) for m in record.medications if m.drug_class is drug_class),
        key=lambda span: span[0] or date.min,
    )
    merged: list[Course] = []
    for first, last in spans:
        if merged:
            open_first, open_last = merged[-1]
            # back to back counts as one; ordinals, so that 9999-12-31 + 1 day cannot overflow
            if open_last is None or (first or date.min).toordinal() <= open_last.toordinal() + 1:
                merged[-1] = (open_first, None if open_last is None or last is None else max(open_last, last))
                continue
        merged.append((first, last))
    return merged


def _taking(record: PatientRecord, day: date, *classes: DrugClass) -> bool | None:
    if any(record.taking(c, day) for c in classes):
        return True
    if all(record.use_unknown(c) for c in classes):
        return None
    return False


def _statin(record: PatientRecord, scans: list[date]) -> dict[str, Any]:
    scan_day = scans[-1]
    at_scan = _taking(record, scan_day, DrugClass.STATIN)
    since = None
    if at_scan:
        running = [start for start, end in courses(record, DrugClass.STATIN) if _covers(start, end, scan_day)]
        since = running[0].isoformat() if running and running[0] is not None else None
    share = None
    if len(scans) > 1 and not record.use_unknown(DrugClass.STATIN):
        share = round(record.share_taking(DrugClass.STATIN, scans[-2], scan_day), 3)
    return {"at_scan": at_scan, "since": since, "between_scans_share": share}


def _covers(start: date | None, end: date | None, day: date) -> bool:
    return (start is None or start <= day) and (end is None or day <= end)


def record_inputs(record: PatientRecord) -> dict[str, Any]:
    """The ``inputs`` object (module docstring) of a record; times are those of its latest scan."""
    scans = [scan.date for scan in record.scans_by_date()]
    scan_day = scans[-1]
    ldl = record.labs.ldl
    return {
        "sex": record.sex.value if record.sex else None,
        "age": record.age.at(scan_day) if record.age else None,
        "race": record.race.value if record.race else None,
        "statin": _statin(record, scans),
        "antihypertensive_at_scan": _taking(record, scan_day, DrugClass.ANTIHYPERTENSIVE),
        "aspirin_at_scan": _taking(record, scan_day, DrugClass.ASPIRIN),
        "antithrombotic_at_scan": _taking(
            record, scan_day, DrugClass.ANTICOAGULANT, DrugClass.P2Y12_INHIBITOR
        ),
        "diabetes": record.diabetes,
        "known_ascvd": True
        if record.coronary_history
        else (None if record.coronary_history_unknown else False),
        "smoker": record.current_smoker,
        "ldl_c": round(ldl.value, 1) if ldl else None,
        "deceased": record.deceased,
    }


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def describe(inputs: dict[str, Any]) -> tuple[str, ...]:
    """``inputs`` as short lines for people (the report's clinician section, the CDS card)."""
    statin = inputs["statin"]
    on_statin = _yes_no(statin["at_scan"])
    if statin["at_scan"] and statin["since"]:
        on_statin += f", since {statin['since']}"
    if statin["between_scans_share"] is not None:
        on_statin += f"; taken on {round(statin['between_scans_share'] * 100)}% of the days between the scans"
    ldl = inputs["ldl_c"]
    lines = [
        f"Sex: {inputs['sex'] or 'unknown'}; age at the scan: "
        f"{inputs['age'] if inputs['age'] is not None else 'unknown'}; "
        f"race/ethnicity group: {inputs['race'] or 'unknown'}",
        f"Statin at the scan: {on_statin}",
        f"Blood-pressure treatment at the scan: {_yes_no(inputs['antihypertensive_at_scan'])}; "
        f"aspirin: {_yes_no(inputs['aspirin_at_scan'])}; anticoagulant or P2Y12 inhibitor: "
        f"{_yes_no(inputs['antithrombotic_at_scan'])}",
        f"Diabetes: {_yes_no(inputs['diabetes'])}; known atherosclerotic disease: "
        f"{_yes_no(inputs['known_ascvd'])}; current smoker: {_yes_no(inputs['smoker'])}",
        f"LDL cholesterol: {f'{ldl:g} mg/dL' if ldl is not None else 'unknown'}",
    ]
    if inputs["deceased"]:
        lines.append("Recorded as deceased")
    return tuple(lines)
