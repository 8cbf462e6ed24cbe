"""The Synthea test corpus: patients nobody on the project wrote, with CAC scores added as radiology
systems send them.

    python tools/synthea_corpus.py build    # generate (or reuse the cached corpus); prints its folder
    python tools/synthea_corpus.py clean    # remove the cache (the Synthea jars in lib/ stay)

Synthea 3.3.0 comes from Maven Central (tools/synthea/pom.xml; ``mvn dependency:copy-dependencies``
into tools/synthea/lib/) and runs as ``java -cp "lib/*" App -s SEED -cs SEED -p N -a 45-79 -r REF -e REF
Massachusetts``: a fixed seed and a fixed reference date ("today" for Synthea) make the same records
on every run. Its FHIR R4 transaction Bundles (US Core 5.0.1, ten years of history, dead patients
included) are kept unchanged under tools/synthea/cache/raw-KEY/; the corpus under
tools/synthea/cache/corpus-KEY/ is the same Bundles, each with one or two CAC Observations appended
(``add_cac``). KEY names the Synthea version, seed, population, ages and reference date, so changing
any of them regenerates; anything else in the cache is removed. Generation runs under a deadline
(FHIRCAC_SYNTHEA_TIMEOUT, default 900 s); Java is killed on timeout, error, interrupt or SIGTERM,
and by Linux when this process dies. ``manifest.json`` in the corpus lists each file, its patient,
the scans added and the ``as_of`` date to evaluate the corpus with.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import processes  # tools/processes.py: one way to stop what tests and tools start

ROOT = Path(__file__).resolve().parent / "synthea"
POM = ROOT / "pom.xml"
LIB = ROOT / "lib"
CACHE = ROOT / "cache"

SYNTHEA_VERSION = "3.3.0"  # the pom's synthea.version (checked in fetch_synthea)
SEED = 20261203  # population and clinician seed
POPULATION = 40  # living patients; Synthea adds the ones who died on the way (11 with this seed)
AGES = "45-79"
STATE = "Massachusetts"
REFERENCE_DATE = date(2026, 12, 1)  # Synthea's "today", fixed so the records do not move with the clock
AS_OF = REFERENCE_DATE  # the date the corpus is evaluated on: every scan added is before it
CAC_STEP = 2  # bump when add_cac or write_corpus changes what they write
MIN_AGE = 40  # a patient younger than this at the last possible scan (a child who died) gets no scan
TIMEOUT = float(os.environ.get("FHIRCAC_SYNTHEA_TIMEOUT", "900"))
JAVA_HEAP = os.environ.get("FHIRCAC_SYNTHEA_HEAP", "2g")

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
TOTAL_CHOLESTEROL = "2093-3"
NAMESPACE = uuid.UUID("6f1d0c8e-3a57-4c1e-9f9b-2b8a7d4e5c01")  # fhircac's namespace for corpus ids


class SyntheaError(RuntimeError):
    pass


def raw_key() -> str:
    return f"synthea-{SYNTHEA_VERSION}-s{SEED}-p{POPULATION}-a{AGES}-r{REFERENCE_DATE:%Y%m%d}"


def corpus_key() -> str:
    return f"{raw_key()}-cac{CAC_STEP}"


# --- Synthea from Maven Central ---------------------------------------------------------------


def fetch_synthea() -> Path:
    """Copy Synthea and its dependencies into lib/ (once; again when the pom changes)."""
    stamp = LIB / ".complete"
    pom_version = re.search(r"<synthea\.version>([^<]+)<", POM.read_text(encoding="utf-8"))
    if pom_version is None or pom_version.group(1) != SYNTHEA_VERSION:
        raise SyntheaError(f"{POM} does not pin synthea.version {SYNTHEA_VERSION}")
    if stamp.exists() and stamp.stat().st_mtime >= POM.stat().st_mtime:
        return LIB
    maven = shutil.which("mvn")
    if maven is None:
        raise SyntheaError("Maven (mvn) is not installed; it is needed to fetch Synthea from Maven Central")
    shutil.rmtree(LIB, ignore_errors=True)
    command = [
        maven, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={LIB}", "-DincludeScope=runtime",
    ]  # fmt: skip
    log = CACHE / "maven.log"
    if _run_bounded(command, ROOT, log) != 0:
        raise SyntheaError(f"fetching Synthea from Maven Central failed; see {log}")
    stamp.touch()
    return LIB


def _run_bounded(command: list[str], cwd: Path, log: Path, timeout: float = TIMEOUT) -> int:
    """Run under a deadline in a session of its own; stopped (processes.stop: the whole group) on
    timeout, error or interrupt, and killed by Linux when this process dies, so no Java is ever
    left running."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SyntheaError(f"{command[0]} did not finish within {timeout:.0f} s; see {log}") from None
    finally:
        processes.stop(process, timeout=10)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent exits (prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def generate_raw() -> Path:
    """Synthea's own output for this key (cached): a folder of FHIR R4 transaction Bundles."""
    target = CACHE / f"raw-{raw_key()}"
    if (target / "complete").exists():
        return target
    fetch_synthea()
    work = CACHE / f".work-raw-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    reference = f"{REFERENCE_DATE:%Y%m%d}"
    command = [
        "java", f"-Xmx{JAVA_HEAP}", "-cp", f"{LIB}/*", "App",
        "-s", str(SEED), "-cs", str(SEED), "-p", str(POPULATION), "-a", AGES,
        "-r", reference, "-e", reference,
        f"--exporter.baseDirectory={work}/",
        "--exporter.fhir.export=true", "--exporter.fhir.transaction_bundle=true",
        "--exporter.csv.export=false", "--exporter.ccda.export=false", "--exporter.text.export=false",
        "--exporter.hospital.fhir.export=false", "--exporter.practitioner.fhir.export=false",
        "--exporter.metadata.export=false", "--exporter.pretty_print=false",
        "--generate.thread_pool_size=2",
        STATE,
    ]  # fmt: skip
    started = time.monotonic()
    log = work / "synthea.log"
    code = _run_bounded(command, work, log)
    bundles = sorted((work / "fhir").glob("*.json")) if (work / "fhir").is_dir() else []
    if code != 0 or len(bundles) < POPULATION:
        raise SyntheaError(f"Synthea exited {code} with {len(bundles)} bundles; see {log}")
    (work / "complete").write_text(f"{time.monotonic() - started:.0f} s\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


# --- CAC scores as radiology systems send them ------------------------------------------------


@dataclass(frozen=True)
class AddedScan:
    observation_id: str
    date: str
    agatston: float
    coding: str  # "dicom" (SNOMED 450360000, DCM 112055, UCUM 1) or "lt-cvd" (SNOMED 450734004, {score})


def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def _patient(bundle: dict[str, Any]) -> tuple[dict[str, Any], str]:
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            return entry["resource"], entry["fullUrl"]
    raise SyntheaError("a Synthea bundle without a Patient")


def _scan_day(bundle: dict[str, Any], last_day: date, rng: random.Random) -> date:
    """A few days after the last lipid panel (else the last encounter) up to ``last_day``: the way a
    scan is ordered after a check-up."""
    lipids, visits = [], []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Observation" and "effectiveDateTime" in resource:
            codes = {c.get("code") for c in resource.get("code", {}).get("coding", [])}
            if TOTAL_CHOLESTEROL in codes:
                lipids.append(_day(resource["effectiveDateTime"]))
        elif resource["resourceType"] == "Encounter" and "start" in resource.get("period", {}):
            visits.append(_day(resource["period"]["start"]))
    candidates = [d for d in lipids if d <= last_day] or [d for d in visits if d <= last_day]
    base = max(candidates) if candidates else last_day - timedelta(days=60)
    return min(base + timedelta(days=rng.randint(2, 21)), last_day)


def _takes_statin(bundle: dict[str, Any]) -> bool:
    return any(
        entry["resource"]["resourceType"] == "MedicationRequest"
        and "statin" in json.dumps(entry["resource"].get("medicationCodeableConcept", {})).lower()
        for entry in bundle["entry"]
    )


def _score(rng: random.Random, age: float, male: bool) -> float:
    """Roughly MESA-like: zero is common below 55 (more so in women), high scores rare."""
    zero = min(0.9, max(0.1, 0.9 - 0.025 * (age - 45) - (0.15 if male else 0.0)))
    if rng.random() < zero:
        return 0
    value = math.exp(rng.gauss(3.2 + 0.04 * (age - 45) + (0.4 if male else 0.0), 1.1))
    return round(min(value, 3500.0), 1 if rng.random() < 0.2 else 0)


def _observation(
    scan_id: str, subject: str, day: date, score: float, coding: str, rng: random.Random
) -> dict[str, Any]:
    effective = datetime(day.year, day.month, day.day, rng.randint(7, 16), rng.choice([0, 15, 30, 45]))
    issued = effective + timedelta(hours=rng.randint(1, 30), minutes=rng.randint(0, 59))
    resource: dict[str, Any] = {"resourceType": "Observation", "id": scan_id, "status": "final"}
    if coding == "dicom":  # DICOM TID 3905 rendered in FHIR
        resource |= {
            "category": [
                {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}
            ],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": "450360000", "display": "Coronary artery calcium score"}
                ],
                "text": "Coronary artery calcium score (Agatston)",
            },
        }
        method = {"coding": [{"system": DCM, "code": "112055", "display": "Agatston scoring method"}]}
        quantity = {"value": score, "unit": "Agatston", "system": UCUM, "code": "1"}
    else:  # HL7 Lithuania CVD IG, CoronaryCalciumScoreLtCvd
        resource |= {
            "category": [
                {"coding": [{"system": OBSERVATION_CATEGORY, "code": "procedure", "display": "Procedure"}]}
            ],
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": "450734004",
                        "display": "Coronary artery calcium score (assessment scale)",
                    }
                ]
            },
        }
        method = None
        quantity = {"value": score, "unit": "score", "system": UCUM, "code": "{score}"}
    resource |= {
        "subject": {"reference": subject},
        "effectiveDateTime": effective.isoformat() + "-05:00",
        "issued": issued.isoformat(timespec="milliseconds") + "-05:00",
    }
    if method:
        resource["method"] = method
    resource["valueQuantity"] = quantity
    return resource


def add_cac(bundle: dict[str, Any], seed: int = SEED) -> list[AddedScan]:
    """Append a current CAC scan (and for most statin users and some others a prior one, 3-5 years
    earlier) to a Synthea transaction Bundle, deterministic from the seed and the patient id. None
    for a patient younger than MIN_AGE at the scan."""
    patient, patient_url = _patient(bundle)
    rng = random.Random(f"{seed}:{patient['id']}")
    birth = date.fromisoformat(patient["birthDate"])
    last_day = REFERENCE_DATE - timedelta(days=1)
    if "deceasedDateTime" in patient:
        last_day = min(last_day, _day(patient["deceasedDateTime"]) - timedelta(days=1))
    male = patient.get("gender") == "male"
    current_day = _scan_day(bundle, last_day, rng)
    if (current_day - birth).days / 365.25 < MIN_AGE:
        return []
    current = _score(rng, (current_day - birth).days / 365.25, male)
    days = [(current_day, current)]
    wants_prior = rng.random() < (0.8 if _takes_statin(bundle) else 0.3)
    prior_day = current_day - timedelta(days=rng.randint(3 * 365, 5 * 365))
    if wants_prior and (prior_day - birth).days / 365.25 >= 35:
        years = (current_day - prior_day).days / 365.25
        prior = 0 if current == 0 else round(current / rng.uniform(1.1, 1.35) ** years)
        days.insert(0, (prior_day, float(prior if prior >= 1 else 0)))
    coding = "dicom" if rng.random() < 0.65 else "lt-cvd"
    added = []
    for index, (day, score) in enumerate(days):
        scan_id = str(uuid.uuid5(NAMESPACE, f"{seed}:{patient['id']}:cac:{index}"))
        resource = _observation(scan_id, patient_url, day, score, coding, rng)
        bundle["entry"].append(
            {
                "fullUrl": f"urn:uuid:{scan_id}",
                "resource": resource,
                "request": {"method": "POST", "url": "Observation"},
            }
        )
        added.append(AddedScan(scan_id, day.isoformat(), score, coding))
    return added


def corpus_dir() -> Path:
    return CACHE / f"corpus-{corpus_key()}"


def write_corpus(raw: Path) -> Path:
    target = corpus_dir()
    if (target / "manifest.json").exists():
        return target
    work = CACHE / f".work-corpus-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    files, left_out = [], []
    for source in sorted((raw / "fhir").glob("*.json")):
        bundle = json.loads(source.read_bytes())
        patient, _ = _patient(bundle)
        scans = add_cac(bundle)
        if not scans:
            left_out.append({"file": source.name, "reason": f"younger than {MIN_AGE} at any possible scan"})
            continue
        (work / source.name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
        files.append(
            {
                "file": source.name,
                "patient": f"Patient/{patient['id']}",
                "entries": len(bundle["entry"]),
                "deceased": "deceasedDateTime" in patient,
                "scans": [asdict(scan) for scan in scans],
            }
        )
    manifest = {
        "synthea": SYNTHEA_VERSION,
        "seed": SEED,
        "population": POPULATION,
        "ages": AGES,
        "state": STATE,
        "reference_date": REFERENCE_DATE.isoformat(),
        "as_of": AS_OF.isoformat(),
        "cac_step": CAC_STEP,
        "files": files,
        "left_out": left_out,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time (make and a test session may both ask)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build() -> Path:
    """The corpus folder, generated when this key is not cached; stale cache entries are removed."""
    with _locked():
        corpus = write_corpus(generate_raw())
        keep = {f"raw-{raw_key()}", f"corpus-{corpus_key()}", ".lock", "maven.log"}
        for stale in CACHE.iterdir():
            if stale.name not in keep:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
        return corpus


def load_manifest(corpus: Path) -> dict[str, Any]:
    return dict(json.loads((corpus / "manifest.json").read_text(encoding="utf-8")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "clean"])
    args = parser.parse_args()
    if args.command == "clean":
        shutil.rmtree(CACHE, ignore_errors=True)
        return 0
    # A plain SIGTERM (a test runner or CI stopping) unwinds like Ctrl-C, so Synthea is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        corpus = build()
    except SyntheaError as error:
        print(f"synthea corpus: {error}", file=sys.stderr)
        return 1
    manifest = load_manifest(corpus)
    entries = sum(f["entries"] for f in manifest["files"])
    print(
        f"synthea corpus: {len(manifest['files'])} patients, {entries} entries in {corpus} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
