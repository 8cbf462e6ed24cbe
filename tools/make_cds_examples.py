"""Write examples/cds-hooks/: CDS Hooks requests built from the example bundles, ready to replay.

    .venv/bin/python tools/make_cds_examples.py           # (re)write examples/cds-hooks/
    .venv/bin/python tools/make_cds_examples.py --check   # exit 1 if the folder differs

One ``patient-view`` request per example bundle, with every prefetch key fhircac's discovery
publishes, and ``order-sign`` requests that show the order cards. Deterministic: hookInstance is a
uuid5 of the file name, so the files only change when the examples or the templates do.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhircac.cdshooks.services import SERVICES  # noqa: E402
from tests import cds_builders as cb  # noqa: E402

OUT = ROOT / "examples" / "cds-hooks"
ORDERS = {  # example → the draft orders of its order-sign request, and what it shows
    "03-cac-1-99-over-55": ("scan", "aspirin"),  # a repeat scan too soon; aspirin criteria not met
    "05-cac-400-metabolically-calm": ("scan",),  # last score ≥400
    "08-known-cad-stent": ("scan", "aspirin"),  # known coronary disease; aspirin is not primary prevention
}
SCAN_DATE = "2027-03-01"  # within 3 years of every example's last scan


def requests_for(bundle_path: Path) -> dict[str, dict[str, Any]]:
    bundle = json.loads(bundle_path.read_text(encoding="utf-8"))
    resources = [entry["resource"] for entry in bundle["entry"]]
    patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    stem = bundle_path.stem
    made = {}
    view = cb.request("patient-view", patient, resources, list(SERVICES["cac-patient-view"].prefetch))
    made[f"{stem}.patient-view.json"] = view
    if stem in ORDERS:
        drafts = []
        if "scan" in ORDERS[stem]:
            drafts.append(cb.scan_order(patient_id=patient, when=SCAN_DATE))
        if "aspirin" in ORDERS[stem]:
            drafts.append(cb.aspirin_order(patient_id=patient))
        keys = list(SERVICES["cac-order-sign"].prefetch)
        made[f"{stem}.order-sign.json"] = cb.request(
            "order-sign", patient, resources, keys, draft_orders=drafts
        )
    for name, body in made.items():
        body["hookInstance"] = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"https://fhircac.org/examples/cds-hooks/{name}")
        )
    return made


def render(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if examples/cds-hooks/ is out of date")
    args = parser.parse_args(argv)
    wanted: dict[str, str] = {}
    for path in sorted((ROOT / "examples").glob("[0-9][0-9]-*.json")):
        wanted.update({name: render(body) for name, body in requests_for(path).items()})
    present = {p.name: p.read_text(encoding="utf-8") for p in OUT.glob("*.json")} if OUT.exists() else {}
    if args.check:
        stale = sorted(set(wanted) ^ set(present) | {n for n in wanted if present.get(n) != wanted[n]})
        if stale:
            print(f"examples/cds-hooks is out of date: {', '.join(stale)}; run tools/make_cds_examples.py")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in set(present) - set(wanted):
        (OUT / name).unlink()
    for name, text in wanted.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"{len(wanted)} requests in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
