"""Fit the compact MESA CAC percentile model that ``fhircac.clinical.percentile`` ships.

Usage::

    python tools/fit_percentile.py [--reference PATH] [--output fhircac/clinical/percentile_model.json]
                                   [--check-only]

The reference file holds the MESA calculator's answers for 320 race x sex x age groups. It stays outside the
repository: the service ships only the 51 coefficients fitted here. The accuracy report is computed with the
runtime module's own code on the file just written, so it describes exactly what the service will answer.
Fitting needs the ``fit`` extra (numpy, scipy); ``--check-only`` needs neither.

Model (per race x sex, a = (age - 64.5) / 19.5)::

    p(age)  = clip(c0 + c1 a + c2 a^2)                    share with CAC > 0 (identity link)
    mu(age) = m0 + m1 a + m2 a^2                          location of ln(score) among CAC > 0
    F(s)    = Phi(sinh(delta * asinh((ln s - mu) / sigma) - epsilon))   sigma, epsilon, delta shared
    percentile(s) = floor(100 * ((1 - p) + p * F(s))), clipped to 0..99; 0 for a score of 0

Fit: least squares of the continuous percentile against the middle of each official integer bin
(k + 0.5) over every integer score 1..3000, then refined with a dead-zone loss that only penalises values
outside [k + 0.25, k + 0.75]. The five published check values are added as heavily weighted interval
constraints kept 0.3 points inside their bin: the four non-zero ones sit 2-19 score points (1.5-8 %) from
a percentile boundary, closer than the calculator's own non-smooth wiggle around any smooth curve, and the
unanchored fit misses one of them (62 female black 120 gives 90, not 91). Anchoring costs < 0.005 MAE.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "clinical" / "data" / "mesa_cac_reference.json"
DEFAULT_OUTPUT = REPO_ROOT / "fhircac" / "clinical" / "percentile_model.json"

RACES = ("white", "black", "hispanic", "chinese")
SEXES = ("female", "male")
AGES = range(45, 85)
MAX_SCORE = 3000

# (age, sex, race, score, percentile) from the official calculator.
CHECKS = (
    (55, "male", "white", 0, 0),
    (46, "female", "chinese", 35, 97),
    (62, "female", "black", 120, 91),
    (70, "male", "hispanic", 450, 84),
    (72, "male", "white", 1200, 85),
)

AGE_CENTER = 64.5
AGE_SCALE = 19.5
P_CLIP = (1e-4, 1 - 1e-4)
P_DEGREE = 2
LOCATION_DEGREE = 2
HINGE_MARGIN = 0.25
CHECK_MARGIN = 0.3
CHECK_WEIGHT = 300.0
# Deterministic start: sigma = 2, no skew, normal tails.
SHAPE_START = (0.693, 0.0, 0.0)

TARGET_MAE = 1.0
TARGET_AGREEMENT = 99.5

REFERENCE_CITATION = (
    "McClelland RL, Chung H, Detrano R, Post W, Kronmal RA. Distribution of coronary artery calcium by "
    "race, gender, and age: results from the Multi-Ethnic Study of Atherosclerosis (MESA). "
    "Circulation. 2006;113(1):30-37. doi:10.1161/CIRCULATIONAHA.105.580696"
)


def group_key(race: str, sex: str, age: int) -> str:
    return f"{race}:{sex}:{age}"


def load_reference(path: Path) -> dict[str, list[int]]:
    """Per group, the official percentile of every integer score 1..MAX_SCORE."""
    groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
    official: dict[str, list[int]] = {}
    for race in RACES:
        for sex in SEXES:
            for age in AGES:
                key = group_key(race, sex, age)
                minimum = groups[key]["min_score_for_percentile"]
                if len(minimum) != 99 or any(b < a for a, b in itertools.pairwise(minimum)):
                    raise ValueError(f"{key}: min_score_for_percentile must be 99 non-decreasing scores")
                official[key] = [bisect.bisect_right(minimum, s) for s in range(1, MAX_SCORE + 1)]
    return official


def p_nonzero_start(path: Path) -> dict[str, float]:
    groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
    return {key: group["p_nonzero"] / 100 for key, group in groups.items()}


def fit(official: dict[str, list[int]], p_start: dict[str, float]) -> dict[str, Any]:
    """Least-squares fit of all 8 race x sex groups at once (they share the shape parameters)."""
    import numpy as np
    from scipy.optimize import least_squares
    from scipy.sparse import lil_matrix
    from scipy.special import ndtr

    pairs = [(race, sex) for race in RACES for sex in SEXES]
    ages = np.array(list(AGES), dtype=float)
    basis_p = np.vander((ages - AGE_CENTER) / AGE_SCALE, P_DEGREE + 1, increasing=True)
    basis_mu = np.vander((ages - AGE_CENTER) / AGE_SCALE, LOCATION_DEGREE + 1, increasing=True)
    n_p, n_mu = basis_p.shape[1], basis_mu.shape[1]
    per_pair = n_p + n_mu
    n_params = len(pairs) * per_pair + 3
    log_scores = np.log(np.arange(1, MAX_SCORE + 1, dtype=float))
    target = np.array([[official[group_key(r, s, a)] for a in AGES] for r, s in pairs], dtype=float)

    def percentiles(theta: Any, i: int, bp: Any, bm: Any, x: Any) -> Any:
        coefficients = theta[i * per_pair : (i + 1) * per_pair]
        p = np.clip(bp @ coefficients[:n_p], *P_CLIP)[:, None]
        mu = (bm @ coefficients[n_p:])[:, None]
        log_sigma, epsilon, log_delta = theta[-3:]
        y = (x - mu) / np.exp(log_sigma)
        return 100 * ((1 - p) + p * ndtr(np.sinh(np.exp(log_delta) * np.arcsinh(y) - epsilon)))

    def all_percentiles(theta: Any) -> Any:
        return np.stack([percentiles(theta, i, basis_p, basis_mu, log_scores) for i in range(len(pairs))])

    anchors = []
    for age, sex, race, score, expected in CHECKS:
        if score > 0:
            x = (age - AGE_CENTER) / AGE_SCALE
            anchors.append(
                (
                    pairs.index((race, sex)),
                    np.array([[x**k for k in range(n_p)]]),
                    np.array([[x**k for k in range(n_mu)]]),
                    np.array([np.log(score)]),
                    expected,
                )
            )

    def anchor_residuals(theta: Any) -> Any:
        out = []
        for i, bp, bm, x, k in anchors:
            value = percentiles(theta, i, bp, bm, x)[0, 0]
            out += [max(k + CHECK_MARGIN - value, 0.0), max(value - (k + 1 - CHECK_MARGIN), 0.0)]
        return CHECK_WEIGHT * np.array(out)

    low = np.where(target == 0, -np.inf, target + HINGE_MARGIN)
    high = np.where(target == 99, np.inf, target + 1 - HINGE_MARGIN)

    def midpoint_residuals(theta: Any) -> Any:
        return np.concatenate([(all_percentiles(theta) - target - 0.5).ravel(), anchor_residuals(theta)])

    def dead_zone_residuals(theta: Any) -> Any:
        values = all_percentiles(theta)
        outside = np.maximum(low - values, 0) + np.maximum(values - high, 0)
        return np.concatenate([outside.ravel(), anchor_residuals(theta)])

    # Each group's residuals depend on its own coefficients and the shared shape only.
    per_group_rows = target[0].size
    sparsity = lil_matrix((target.size + 2 * len(anchors), n_params), dtype=np.int8)
    for i in range(len(pairs)):
        sparsity[i * per_group_rows : (i + 1) * per_group_rows, i * per_pair : (i + 1) * per_pair] = 1
    for j, anchor in enumerate(anchors):
        i = anchor[0]
        sparsity[target.size + 2 * j : target.size + 2 * j + 2, i * per_pair : (i + 1) * per_pair] = 1
    sparsity[:, -3:] = 1

    theta = np.zeros(n_params)
    for i, (race, sex) in enumerate(pairs):
        prevalence = np.array([p_start[group_key(race, sex, a)] for a in AGES])
        theta[i * per_pair : i * per_pair + n_p] = np.linalg.lstsq(basis_p, prevalence, rcond=None)[0]
        theta[i * per_pair + n_p] = 4.0
    theta[-3:] = SHAPE_START

    options = {"jac_sparsity": sparsity.tocsr(), "x_scale": "jac", "tr_solver": "lsmr"}
    theta = least_squares(midpoint_residuals, theta, **options).x
    theta = least_squares(dead_zone_residuals, theta, **options).x

    log_sigma, epsilon, log_delta = (float(v) for v in theta[-3:])
    groups = {}
    for i, (race, sex) in enumerate(pairs):
        coefficients = theta[i * per_pair : (i + 1) * per_pair]
        groups[f"{race}:{sex}"] = {
            "p_nonzero": [float(v) for v in coefficients[:n_p]],
            "location": [float(v) for v in coefficients[n_p:]],
        }
    return {
        "age_center": AGE_CENTER,
        "age_scale": AGE_SCALE,
        "p_nonzero_clip": list(P_CLIP),
        "shape": {"sigma": float(np.exp(log_sigma)), "epsilon": epsilon, "delta": float(np.exp(log_delta))},
        "groups": groups,
    }


def parameter_count(coefficients: dict[str, Any]) -> int:
    per_group = sum(len(g["p_nonzero"]) + len(g["location"]) for g in coefficients["groups"].values())
    return per_group + len(coefficients["shape"])


def model_document(coefficients: dict[str, Any], accuracy: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": "MESA CAC percentile, two-part model with a sinh-arcsinh distribution of ln(score)",
        "description": (
            "Our own compact fit to the MESA CAC Score Reference Values calculator "
            "(tools/fit_percentile.py); no MESA table is copied. a = (age - age_center) / age_scale; "
            "p = clip(sum p_nonzero[k] a^k) is the share with CAC > 0; mu = sum location[k] a^k; "
            "among CAC > 0, F(s) = Phi(sinh(delta * asinh((ln s - mu) / sigma) - epsilon)); "
            "percentile = floor(100 * ((1 - p) + p * F(s))) clipped to 0..99, and 0 for a score of 0. "
            "Valid for ages 45-84 and the four MESA race/ethnicity groups."
        ),
        "reference": REFERENCE_CITATION,
        "fit": {
            "data": "MESA calculator answers for 320 groups, every integer score 1..3000 (not shipped)",
            "loss": (
                f"least squares to the bin middle k + 0.5, then dead zone [k + {HINGE_MARGIN}, "
                f"k + {1 - HINGE_MARGIN}]; the five published check values as interval constraints "
                f"(weight {CHECK_WEIGHT}, margin {CHECK_MARGIN})"
            ),
            "p_nonzero_degree": P_DEGREE,
            "location_degree": LOCATION_DEGREE,
        },
        "parameter_count": parameter_count(coefficients),
        "accuracy": accuracy,
        "coefficients": coefficients,
    }


def write_model(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def evaluate(model_path: Path, official: dict[str, list[int]]) -> dict[str, Any]:
    """Accuracy through the runtime module, on the file at ``model_path``."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from fhircac.clinical import percentile as runtime
    from fhircac.clinical.record import Race, Sex

    shipped = model_path.resolve() == Path(runtime.__file__).with_name("percentile_model.json").resolve()
    if shipped:
        runtime.percentile_thresholds.cache_clear()
        thresholds_for = runtime.percentile_thresholds
        model_percentile = runtime.estimate_percentile
    else:
        model = runtime._load_model(model_path.read_text(encoding="utf-8"))
        thresholds_for = model.thresholds

        def model_percentile(age: float, sex: Sex, race: Race, agatston: float) -> int:
            thresholds = model.thresholds(int(age), sex, race)
            return 0 if agatston <= 0 else bisect.bisect_right(thresholds, agatston)

    total_error = 0
    disagreements = 0
    worst: dict[str, Any] = {"error": -1}
    by_pair: dict[str, float] = {}
    for race in RACES:
        for sex in SEXES:
            pair_error = 0
            for age in AGES:
                key = group_key(race, sex, age)
                thresholds = thresholds_for(age, Sex(sex), Race(race))
                for score, expected in enumerate(official[key], start=1):
                    got = bisect.bisect_right(thresholds, score)
                    error = abs(got - expected)
                    pair_error += error
                    disagreements += (got >= 75) != (expected >= 75)
                    if error > worst["error"]:
                        worst = {"error": error, "group": key, "score": score}
                        worst |= {"model": got, "official": expected}
            total_error += pair_error
            by_pair[f"{race}:{sex}"] = round(pair_error / (len(AGES) * MAX_SCORE), 4)
    cases = len(official) * MAX_SCORE
    checks = []
    for age, sex, race, score, expected in CHECKS:
        got = model_percentile(age, Sex(sex), Race(race), score)
        checks.append({"age": age, "sex": sex, "race": race, "score": score})
        checks[-1] |= {"official": expected, "model": got}
    return {
        "evaluated_with": "fhircac.clinical.percentile" if shipped else "fhircac.clinical.percentile._Model",
        "cases": cases,
        "scores": [1, MAX_SCORE],
        "mean_absolute_error": round(total_error / cases, 4),
        "worst_absolute_error": worst,
        "agreement_at_75th_percentile_percent": round(100 * (1 - disagreements / cases), 3),
        "disagreements_at_75th_percentile": disagreements,
        "mean_absolute_error_by_race_sex": by_pair,
        "check_values": checks,
    }


def print_report(report: dict[str, Any], parameters: int) -> bool:
    worst = report["worst_absolute_error"]
    mae = report["mean_absolute_error"]
    agreement = report["agreement_at_75th_percentile_percent"]
    print(f"Parameters: {parameters}")
    print(f"Cases: {report['cases']} (320 groups x scores {report['scores'][0]}..{report['scores'][1]})")
    print(f"MAE: {mae:.4f} percentile points (target <= {TARGET_MAE})")
    print(
        f"Worst absolute error: {worst['error']} at {worst['group']} score {worst['score']} "
        f"(model {worst['model']}, official {worst['official']})"
    )
    print(
        f">=75th percentile agreement: {agreement:.3f} % "
        f"({report['disagreements_at_75th_percentile']} cases differ; target >= {TARGET_AGREEMENT} %)"
    )
    print("MAE by race x sex:")
    for pair, value in report["mean_absolute_error_by_race_sex"].items():
        print(f"  {pair.replace(':', ' '):16s} {value:.4f}")
    print("Check values:")
    checks_ok = True
    for check in report["check_values"]:
        ok = check["model"] == check["official"]
        checks_ok &= ok
        print(
            f"  {check['age']} {check['sex']} {check['race']} CAC {check['score']} -> {check['model']} "
            f"(official {check['official']}) {'ok' if ok else 'MISMATCH'}"
        )
    passed = mae <= TARGET_MAE and agreement >= TARGET_AGREEMENT and checks_ok
    print("Targets:", "met" if passed else "NOT MET")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, help="MESA reference JSON")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model JSON to write or check")
    parser.add_argument("--check-only", action="store_true", help="report on the current model, no fitting")
    args = parser.parse_args(argv)

    reference = args.reference.resolve()
    if not reference.is_file():
        parser.error(f"reference file not found: {reference}")
    official = load_reference(reference)
    print(f"Reference: {reference}")

    if args.check_only:
        document = json.loads(args.output.read_text(encoding="utf-8"))
        report = evaluate(args.output, official)
        return 0 if print_report(report, document["parameter_count"]) else 1

    started = time.perf_counter()
    coefficients = fit(official, p_nonzero_start(reference))
    elapsed = time.perf_counter() - started
    print(f"Fit: {elapsed:.1f} s")
    # Evaluate a draft, then write the model once with its report: the shipped file is never left
    # half-written, and the runtime (which reads the shipped file's report) keeps importing meanwhile.
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / "draft_percentile_model.json"
        write_model(draft, model_document(coefficients, None))
        report = evaluate(draft, official)
    write_model(args.output, model_document(coefficients, report))
    print(f"Wrote {args.output}")
    return 0 if print_report(report, parameter_count(coefficients)) else 1


if __name__ == "__main__":
    sys.exit(main())
