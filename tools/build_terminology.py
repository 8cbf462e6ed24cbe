"""Generate fhircac/fhir/terminology/*.json from the published value sets and fhircac's supplement.

Usage::

    python tools/build_terminology.py [--source DIR] [--check]

Inputs: the terminology pack ``../shared/clinical/data/terminology/*.json`` (VSAC value-set
expansions with their provenance; see its README) and ``tools/terminology_supplement.json`` (the
gaps that pack lists, filled from REFERENCE.md §12; every entry says why). Output: one table per
pack file plus ``supplement.json``, each keeping the source value sets (OID, canonical URL,
version, expansion), and ``index.json`` with the licence notices and the SHA-256 of every input
and output. Output is deterministic.

``--check`` exits 1 when the package's tables differ from what would be written. Where the pack is
not on disk (a clean checkout without ``../shared``) it checks what it can without it: the
supplement table is rebuilt and compared, the supplement's digest must be the one the tables were
built from, and every table must still have the digest recorded at generation (no hand edits).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "clinical" / "data" / "terminology"
SUPPLEMENT = REPO_ROOT / "tools" / "terminology_supplement.json"
OUT = REPO_ROOT / "fhircac" / "fhir" / "terminology"
GENERATED_BY = "tools/build_terminology.py"

# Per group: the attributes of a code the reader uses (the rest stays in the pack).
KEPT = {
    "statins": ("intensity", "ingredients", "conceptType"),
    "other-lipid-lowering": ("ingredients",),
    "aspirin": ("ingredients", "singleIngredient", "lowDoseAspirin"),
    "antiplatelet-p2y12": ("ingredients", "subclass"),
    "anticoagulants": ("ingredients", "subclass", "route", "kind"),
    "antihypertensives": ("ingredients", "alsoStatin"),
    "diabetes": ("diabetesTypeGuess",),
    "ascvd-conditions": ("categories", "hemorrhagic", "possiblySubclinicalAtherosclerosis"),
    "pci": ("drugEluting",),
    "cabg": (),
    "hypercholesterolemia-fh": (),
    "ldl-cholesterol": ("isGoalNotResult",),
    "tobacco-use": ("statusValueSets", "formerUseGuess"),
}
SOURCE_KEYS = ("valueSet", "oid", "title", "version", "expansionTimestamp", "role", "repo", "commit", "path")
_SMOKED = re.compile(r"smok|cigar|pipe|hookah|tobacco daily|cigarette", re.IGNORECASE)

# Licence notices the pack's README quotes (its Licence section); kept with the tables.
NOTICES = [
    "Codes are taken from VSAC value-set expansions published in the cqframework eCQM/dQM content "
    "repositories (CC0 1.0); the CC0 waiver covers the repository content, not the third-party code "
    "systems. No source ValueSet carries a copyright element.",
    "CMS347 Measure.copyright (verbatim): This electronic clinical quality measure (Measure) and related "
    "data specifications are owned and stewarded by the Centers for Medicare & Medicaid Services (CMS). "
    "CMS contracted (Contract # 75FCMC18D0027/ Task Order #: 75FCMC24F0144) with the American Institutes "
    "for Research (AIR) to develop this electronic measure. AIR is not responsible for any use of the "
    "Measure. AIR makes no representations, warranties, or endorsement about the quality of any "
    "organization or physician that uses or reports performance measures and AIR has no liability to "
    "anyone who relies on such measures or specifications. Limited proprietary coding is contained in the "
    "Measure specifications for user convenience. Users of proprietary code sets should obtain all "
    "necessary licenses from the owners of the code sets. AIR disclaims all liability for use or accuracy "
    "of any third-party codes contained in the specifications. CPT(R) contained in the Measure "
    "specifications is copyright 2004-2024 American Medical Association. LOINC(R) is copyright 2004-2024 "
    "Regenstrief Institute, Inc. This material contains SNOMED Clinical Terms(R) (SNOMED CT[R]) copyright "
    "2004-2024 International Health Terminology Standards Development Organisation. ICD-10 is copyright "
    "2024 World Health Organization. All Rights Reserved.",
    "NCQA-owned measures (CMS138 Tobacco User / Tobacco Non User, CMS122 Diabetes): NCQA holds a "
    "copyright in the Measure; internal non-commercial use needs no approval; other uses, including "
    "vendors embedding the measures and specifications in a product or service, must be approved by NCQA.",
    "CMS145 (Coronary Artery Disease No MI, Initial Myocardial Infarction): Copyright 2025 American "
    "College of Cardiology and American Heart Association. All Rights Reserved.",
    "Joint Commission measures CMS71, CMS104, CMS190 (anticoagulant and antithrombotic value sets): "
    "Measure specifications are in the Public Domain.",
    "Code systems: CPT(R) (C) American Medical Association - CPT codes and descriptions (pci, cabg) remain "
    "AMA property and normally need an AMA licence for production use; LOINC(R) (C) Regenstrief Institute "
    "(free licence at loinc.org); SNOMED CT(R) (C) International Health Terminology Standards Development "
    "Organisation; ICD-10 (C) World Health Organization; RxNorm made available by the U.S. National "
    "Library of Medicine.",
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump(data: Any) -> str:
    """Stable JSON: one code per line, so a diff shows what changed."""
    head = {k: v for k, v in data.items() if k != "codes"}
    text = json.dumps(head, indent=1, ensure_ascii=False, sort_keys=False)
    if "codes" not in data:
        return text + "\n"
    lines = [json.dumps(code, ensure_ascii=False, sort_keys=True) for code in data["codes"]]
    body = ",\n  ".join(lines)
    return text[:-2] + ',\n "codes": [\n  ' + body + "\n ]\n}\n"


def pack_table(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    pack = json.loads(raw)
    group = pack["group"]
    kept = KEPT[group]
    codes = []
    for entry in pack["codes"]:
        code: dict[str, Any] = {k: entry[k] for k in ("system", "code", "display", "valueSet")}
        code.update({k: entry[k] for k in kept if k in entry})
        if entry.get("legacy"):
            code["legacy"] = True
        if group == "tobacco-use":
            code["smoking"] = _smoking(entry)
        codes.append(code)
    return {
        "group": group,
        "generatedBy": GENERATED_BY,
        "description": pack["description"],
        "source": {"file": path.name, "sha256": sha256(raw)},
        "valueSets": [{k: s.get(k) for k in SOURCE_KEYS} for s in pack["sources"]],
        "systemAliases": pack.get("systemAliases", {}),
        "notes": pack.get("notes", []),
        "codes": sorted(codes, key=lambda c: (c["system"], c["code"])),
    }


def _smoking(entry: dict[str, Any]) -> str | None:
    """current / not-current / smokeless (a tobacco user who does not smoke) / None (a question)."""
    status = set(entry.get("statusValueSets") or [])
    if "current-user" in status:
        return "current" if _SMOKED.search(entry["display"]) else "smokeless"
    if "non-user" in status:
        return "not-current"
    return None


def supplement_table(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    return {
        "group": "supplement",
        "generatedBy": GENERATED_BY,
        "description": data["description"],
        "source": {"file": f"tools/{SUPPLEMENT.name}", "sha256": sha256(raw)},
        **{k: v for k, v in data.items() if k not in ("description",)},
    }


def build(source: Path | None) -> dict[str, str]:
    """File name → text of every output file; pack tables only when the pack is available."""
    supplement_raw = SUPPLEMENT.read_bytes()
    files: dict[str, str] = {"supplement.json": dump(supplement_table(supplement_raw))}
    if source is not None:
        for path in sorted(source.glob("*.json")):
            files[path.name] = dump(pack_table(path))
    return files


def index(files: dict[str, str], source: Path) -> str:
    tables = {
        name: {"sha256": sha256(text.encode()), "source": json.loads(text)["source"]}
        for name, text in sorted(files.items())
    }
    data = {
        "generatedBy": GENERATED_BY,
        "pack": "../shared/clinical/data/terminology (VSAC expansions from cqframework content repositories; "
        "its README gives every repository, commit and selection rule)",
        "packReadmeSha256": sha256((source / "README.md").read_bytes())
        if (source / "README.md").exists()
        else None,
        "supplementSha256": sha256(SUPPLEMENT.read_bytes()),
        "notices": NOTICES,
        "tables": tables,
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def check_without_pack(out: Path, files: dict[str, str]) -> list[str]:
    problems = []
    index_path = out / "index.json"
    if not index_path.exists():
        return ["index.json is missing"]
    recorded = json.loads(index_path.read_text(encoding="utf-8"))
    if recorded["supplementSha256"] != sha256(SUPPLEMENT.read_bytes()):
        problems.append("the supplement changed since the tables were generated")
    for name, entry in recorded["tables"].items():
        path = out / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif sha256(path.read_bytes()) != entry["sha256"]:
            problems.append(f"{name} differs from what was generated (edited by hand?)")
    if (out / "supplement.json").read_text(encoding="utf-8") != files["supplement.json"]:
        problems.append("supplement.json is not what the supplement gives")
    listed = set(recorded["tables"]) | {"index.json"}
    problems += [f"{p.name} is not a generated table" for p in out.glob("*.json") if p.name not in listed]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    have_pack = args.source.is_dir() and any(args.source.glob("*.json"))
    if not have_pack and not args.check:
        print(f"the terminology pack is not at {args.source}", file=sys.stderr)
        return 2
    files = build(args.source if have_pack else None)
    if args.check and not have_pack:
        problems = check_without_pack(args.out, files)
        print(f"pack not at {args.source}: checked digests and the supplement only")
    else:
        files["index.json"] = index(files, args.source)
        problems = []
        for name, text in files.items():
            path = args.out / name
            if not args.check:
                args.out.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            elif not path.exists() or path.read_text(encoding="utf-8") != text:
                problems.append(f"{name} is out of date")
        if args.check:
            problems += [f"{p.name} is not generated" for p in args.out.glob("*.json") if p.name not in files]
            print(f"rebuilt from the pack at {args.source} and compared")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run: python tools/build_terminology.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
