"""Code systems, codes and canonical URLs: the one place the FHIR layer (and profiles/) takes them from.

Codes are REFERENCE §12's. Where REFERENCE is silent (antihypertensives, smoking answers, race,
bleeding risk, family history) the choice is fhircac's and is marked ``service choice``.
"""

from __future__ import annotations

from fhircac.clinical.record import CoronaryHistory, DrugClass, Vessel
from fhircac.clinical.units import Analyte
from fhircac.fhir import terminology

# --- external code systems ---------------------------------------------------------------------
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
CDC_RACE_ETHNICITY = "urn:oid:2.16.840.1.113883.6.238"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
V3_DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
IPS_ABSENT_UNKNOWN = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
US_CORE_INDIVIDUAL_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-individual-sex"
US_CORE_BIRTH_SEX = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
ICD10_SYSTEMS = frozenset({ICD10, ICD10_CM})

# --- fhircac's own canonical URLs (ARCHITECTURE.md) --------------------------------------------
CANONICAL = "https://fhircac.org/fhir"
FHIRCAC = f"{CANONICAL}/CodeSystem/fhircac"  # concepts: cac-total, vessels, predictions, activities
RULE = f"{CANONICAL}/CodeSystem/fhircac-rule"  # statement ids of the clinical core
POLICY = f"{CANONICAL}/CodeSystem/fhircac-policy"
NOTE_AUDIENCE = f"{CANONICAL}/CodeSystem/note-audience"  # patient | clinician
ASSESSMENT_ID = f"{CANONICAL}/sid/assessment"  # identifier system of produced resources
PROVENANCE_TAG = f"{CANONICAL}/sid/provenance"  # meta.tag system (R4 Provenance has no identifier)
DEVICE_ID = f"{CANONICAL}/sid/software"
OVERRIDE_REASON = f"{CANONICAL}/CodeSystem/cds-override-reason"  # CDS Hooks card overrideReasons


def structure_definition(name: str) -> str:
    return f"{CANONICAL}/StructureDefinition/{name}"


def value_set(name: str) -> str:
    return f"{CANONICAL}/ValueSet/{name}"


PROFILE_CAC_OBSERVATION = structure_definition("cac-observation")
PROFILE_CAC_RISK_ASSESSMENT = structure_definition("cac-riskassessment")
PROFILE_CAC_CARE_PLAN = structure_definition("cac-careplan")
PROFILE_CAC_PROVENANCE = structure_definition("cac-provenance")
EXT_POLICY = structure_definition("policy")  # complex: policy (Coding of POLICY), version (string)
EXT_SCORE_BAND = structure_definition("cac-score-band")  # valueCoding (system FHIRCAC, cac-band-*)
EXT_CAC_DRS = structure_definition("cac-drs")  # valueString, e.g. "A2/N2"
EXT_PERCENTILE = structure_definition("cac-percentile")  # complex: value, estimated, reference
EXT_METABOLIC_STATE = structure_definition("metabolic-state")  # valueCoding (system FHIRCAC)
EXT_REPLACES_ASSESSMENT = structure_definition("replaces-assessment")  # valueReference(RiskAssessment)
EXT_NOTE_AUDIENCE = structure_definition("note-audience")  # on Annotation: valueCode patient|clinician

# --- CAC Observation -----------------------------------------------------------------------------
CAC_TOTAL = "cac-total"
CAC_CODES: frozenset[tuple[str, str]] = frozenset(
    {(SNOMED, "450360000"), (SNOMED, "450734004"), (FHIRCAC, CAC_TOTAL)}
)
AGATSTON_METHOD = (DICOM, "112055")
# UCUM codes accepted for a score: REFERENCE §12 gives "1" and "{Agatston}"; "{score}" is used by
# the HL7 Lithuania CVD IG (notes/fhir.md §7). "{Agatston}" is what fhircac writes.
# Any UCUM {annotation} is unity: {AU} and {Agatston_units} are what scanners also send (review F12).
AGATSTON_UNITS = frozenset(
    {"1", "{Agatston}", "{score}", "{Agatston'U}", "{AU}", "{Agatston_units}", "{Agatston units}"}
)
AGATSTON_UNIT_TEXT = frozenset({"agatston", "au", "score", "agatston units", "agatston score", "1"})
VESSEL_COMPONENTS: dict[str, Vessel] = {
    "cac-left-main": Vessel.LEFT_MAIN,
    "cac-lad": Vessel.LAD,
    "cac-lcx": Vessel.LCX,
    "cac-rca": Vessel.RCA,
}
CAC_PERCENTILE = "cac-percentile"
CAC_VOLUME = "cac-volume"  # read and ignored: the core uses Agatston only
CAC_MASS = "cac-mass"
CAC_USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
OBSERVATION_STATUSES = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)

# Primary score bands → fhircac codes (the band strings are the summary's).
BAND_CODES = {
    "0": "cac-band-0",
    "1-99": "cac-band-1-99",
    "100-399": "cac-band-100-399",
    "≥400": "cac-band-400",
}
METABOLIC_CODES = {"active": "metabolic-active", "calm": "metabolic-calm", "unknown": "metabolic-unknown"}

# --- labs and vitals (LOINC) -----------------------------------------------------------------------
LAB_CODES: dict[str, Analyte] = {
    # Measured LDL-C (mass/volume) from the LDL Cholesterol value set (terminology tables).
    **dict.fromkeys(sorted(terminology.ldl_codes()), Analyte.LDL),
    "2093-3": Analyte.TOTAL_CHOLESTEROL,
    "2085-9": Analyte.HDL,
    "2089-1": Analyte.LDL,
    "13457-7": Analyte.LDL,
    "18262-6": Analyte.LDL,
    "96259-7": Analyte.LDL,
    "2571-8": Analyte.TRIGLYCERIDES,
    "1884-6": Analyte.APOB,
    "10835-7": Analyte.LPA,  # mass
    "43583-4": Analyte.LPA,  # molar
    "30522-7": Analyte.HS_CRP,
    "1988-5": Analyte.HS_CRP,  # standard CRP: accepted, with a note
    "27873-9": Analyte.FASTING_INSULIN,
    "20448-7": Analyte.FASTING_INSULIN,  # insulin not marked fasting: accepted, with a note
    "4548-4": Analyte.HBA1C,
    "59261-8": Analyte.HBA1C,
    "17856-6": Analyte.HBA1C,  # by HPLC (service choice: the review saw it sent, F13)
    "3043-7": Analyte.TRIGLYCERIDES,  # fasting (service choice: F13)
    "8480-6": Analyte.SYSTOLIC_BP,
    "8459-0": Analyte.SYSTOLIC_BP,  # sitting (service choice: the review saw it sent, F13)
    # Moles/volume variants that SI laboratories send (service choice: not in REFERENCE §12).
    "14647-2": Analyte.TOTAL_CHOLESTEROL,
    "14646-4": Analyte.HDL,
    "22748-8": Analyte.LDL,
    "39469-2": Analyte.LDL,
    "14927-8": Analyte.TRIGLYCERIDES,
}
LAB_CODES_WITH_NOTE = {
    "1988-5": "a standard CRP assay was read as hs-CRP",
    "20448-7": "an insulin result not marked fasting was read as fasting insulin",
}
BLOOD_PRESSURE_PANELS = frozenset({"85354-9", "55284-4"})  # systolic is component 8480-6
SMOKING_STATUS = "72166-2"
PCE_RESULT = "79423-0"

# Smoking status answers (SNOMED, US Core value set); service choice for anything else: unknown.
CURRENT_SMOKER = frozenset(
    {"449868002", "428041000124106", "77176002", "428071000124103", "428061000124105", "65568007"}
)
NOT_CURRENT_SMOKER = frozenset({"8517006", "266919005"})

# --- medications ------------------------------------------------------------------------------------
# RxNorm ingredient → (class, name). REFERENCE §12 for lipid lowering and aspirin; antihypertensive
# ingredients are a service choice (common agents), backed by ATC C02/C03/C07/C08/C09.
RXNORM_INGREDIENTS: dict[str, tuple[DrugClass, str]] = {
    "83367": (DrugClass.STATIN, "atorvastatin"),
    "301542": (DrugClass.STATIN, "rosuvastatin"),
    "36567": (DrugClass.STATIN, "simvastatin"),
    "42463": (DrugClass.STATIN, "pravastatin"),
    "6472": (DrugClass.STATIN, "lovastatin"),
    "41127": (DrugClass.STATIN, "fluvastatin"),
    "861634": (DrugClass.STATIN, "pitavastatin"),
    "341248": (DrugClass.OTHER_LIPID_LOWERING, "ezetimibe"),
    "1665684": (DrugClass.OTHER_LIPID_LOWERING, "evolocumab"),
    "1659152": (DrugClass.OTHER_LIPID_LOWERING, "alirocumab"),
    "1191": (DrugClass.ASPIRIN, "aspirin"),
    "29046": (DrugClass.ANTIHYPERTENSIVE, "lisinopril"),
    "17767": (DrugClass.ANTIHYPERTENSIVE, "amlodipine"),
    "52175": (DrugClass.ANTIHYPERTENSIVE, "losartan"),
    "5487": (DrugClass.ANTIHYPERTENSIVE, "hydrochlorothiazide"),
    "6918": (DrugClass.ANTIHYPERTENSIVE, "metoprolol"),
    "1202": (DrugClass.ANTIHYPERTENSIVE, "atenolol"),
    "69749": (DrugClass.ANTIHYPERTENSIVE, "valsartan"),
    "35296": (DrugClass.ANTIHYPERTENSIVE, "ramipril"),
    "3827": (DrugClass.ANTIHYPERTENSIVE, "enalapril"),
    "2409": (DrugClass.ANTIHYPERTENSIVE, "chlorthalidone"),
    "20352": (DrugClass.ANTIHYPERTENSIVE, "carvedilol"),
    "118463": (DrugClass.ANTIHYPERTENSIVE, "olmesartan"),
}
# ATC prefixes, longest match wins: C10AA statins; the rest of C10 other lipid lowering; C10BA/C10BX
# statin combinations count as a statin (and the partner drug as other lipid lowering).
ATC_PREFIXES: dict[str, tuple[DrugClass, ...]] = {
    "C10AA": (DrugClass.STATIN,),
    "C10BA": (DrugClass.STATIN, DrugClass.OTHER_LIPID_LOWERING),
    "C10BX": (DrugClass.STATIN,),
    "C10": (DrugClass.OTHER_LIPID_LOWERING,),
    "B01AC06": (DrugClass.ASPIRIN,),
    "C02": (DrugClass.ANTIHYPERTENSIVE,),
    "C03": (DrugClass.ANTIHYPERTENSIVE,),
    "C07": (DrugClass.ANTIHYPERTENSIVE,),
    "C08": (DrugClass.ANTIHYPERTENSIVE,),
    "C09": (DrugClass.ANTIHYPERTENSIVE,),
}
# Names matched as whole words in Medication text and displays when no code is recognised
# (product-level RxNorm codes carry the ingredient name in their display). Service choice.
DRUG_NAMES: dict[str, DrugClass] = {
    **{name: drug_class for drug_class, name in RXNORM_INGREDIENTS.values()},
    "lipitor": DrugClass.STATIN,
    "crestor": DrugClass.STATIN,
    "zocor": DrugClass.STATIN,
    "pravachol": DrugClass.STATIN,
    "livalo": DrugClass.STATIN,
    "lescol": DrugClass.STATIN,
    "zetia": DrugClass.OTHER_LIPID_LOWERING,
    "repatha": DrugClass.OTHER_LIPID_LOWERING,
    "praluent": DrugClass.OTHER_LIPID_LOWERING,
    "bempedoic": DrugClass.OTHER_LIPID_LOWERING,
    "inclisiran": DrugClass.OTHER_LIPID_LOWERING,
    "acetylsalicylic": DrugClass.ASPIRIN,
}
NO_KNOWN_MEDICATIONS = (IPS_ABSENT_UNKNOWN, "no-known-medications")
NO_KNOWN_PROBLEMS = (IPS_ABSENT_UNKNOWN, "no-known-problems")

# --- conditions and procedures -------------------------------------------------------------------------
DIABETES_SNOMED = frozenset({"73211009", "44054006", "46635009"})
DIABETES_ICD10 = ("E08", "E09", "E10", "E11", "E12", "E13")
# 53741008 "coronary arteriosclerosis" alone is subclinical atherosclerosis (issue 14): see terminology.
CORONARY_SNOMED: dict[str, CoronaryHistory] = {
    "414545008": CoronaryHistory.CORONARY_DISEASE,
    "22298006": CoronaryHistory.MYOCARDIAL_INFARCTION,
    "399211009": CoronaryHistory.MYOCARDIAL_INFARCTION,
    "36969009": CoronaryHistory.STENT,
    "415070008": CoronaryHistory.STENT,
    "232717009": CoronaryHistory.BYPASS,
}
# ICD-10 prefixes, longest match wins.
CORONARY_ICD10: dict[str, CoronaryHistory] = {
    "I20": CoronaryHistory.CORONARY_DISEASE,
    "I23": CoronaryHistory.CORONARY_DISEASE,
    "I24": CoronaryHistory.CORONARY_DISEASE,
    "I25": CoronaryHistory.CORONARY_DISEASE,
    "I21": CoronaryHistory.MYOCARDIAL_INFARCTION,
    "I22": CoronaryHistory.MYOCARDIAL_INFARCTION,
    "I25.2": CoronaryHistory.MYOCARDIAL_INFARCTION,
    "Z95.5": CoronaryHistory.STENT,
    "Z98.61": CoronaryHistory.STENT,
    "Z95.1": CoronaryHistory.BYPASS,
}
# Symptoms that call for testing rather than a calcium score (service choice): chest pain, dyspnoea
# on exertion.
SYMPTOM_SNOMED = frozenset({"29857009", "60845006"})
SYMPTOM_ICD10 = ("R07", "R06.0")
# Raised bleeding risk (service choice: REFERENCE §12 has no codes): the fhircac code, and ICD-10
# coagulation defects/purpura (D65-D69), GI haemorrhage (K92.0-K92.2), intracranial haemorrhage
# (I60-I62).
HIGH_BLEEDING_RISK = "high-bleeding-risk"
BLEEDING_ICD10 = ("D65", "D66", "D67", "D68", "D69", "K92.0", "K92.1", "K92.2", "I60", "I61", "I62")
# The same in SNOMED CT, as Synthea and Epic/Cerner problem lists code them: intracranial haemorrhage
# (any clinical status: a past bleed stays a reason against aspirin, like a haemorrhagic stroke in the
# terminology tables) and, while active, GI haemorrhage and coagulation/platelet disorders.
INTRACRANIAL_HAEMORRHAGE_SNOMED = frozenset({"274100004", "1386000", "21454007"})
BLEEDING_SNOMED = frozenset({"74474003", "64779008", "90935002", "128105004", "302215000"})
# Family history: a FamilyMemberHistory condition in this set, in a first-degree relative, with onset
# before 55 (male relative) or 65 (female relative); or an Observation coded with the fhircac code
# below and a boolean value (the only way to state "no" explicitly).
FAMILY_HISTORY_PREMATURE_CHD = "family-history-premature-chd"
FAMILY_CHD_SNOMED = frozenset(CORONARY_SNOMED) | {"394659003", "53741008"}  # + ACS, coronary disease
FAMILY_CHD_ICD10 = ("I20", "I21", "I22", "I23", "I24", "I25")
FIRST_DEGREE_MALE = frozenset(
    {"FTH", "NFTH", "BRO", "NBRO", "TWINBRO", "FTWINBRO", "ITWINBRO", "SON", "NSON"}
)
FIRST_DEGREE_FEMALE = frozenset(
    {"MTH", "NMTH", "SIS", "NSIS", "TWINSIS", "FTWINSIS", "ITWINSIS", "DAU", "NDAU"}
)
FIRST_DEGREE_ANY = frozenset({"PRN", "NPRN", "SIB", "NSIB", "TWIN", "CHILD", "NCHILD"})
PREMATURE_ONSET_MALE, PREMATURE_ONSET_FEMALE = 55, 65

# --- race and ethnicity (US Core, CDC race & ethnicity code system) -----------------------------
HISPANIC = "2135-2"
NOT_HISPANIC = "2186-5"
WHITE = "2106-3"
BLACK = "2054-5"
ASIAN = "2028-9"
CHINESE = "2034-7"  # a detailed race under Asian: MESA's group is Chinese American

# --- scan orders (REFERENCE §12), for the order hooks and the CarePlan activity ----------------------
SCAN_ORDER_CODES: frozenset[tuple[str, str]] = frozenset(
    {
        (CPT, "75571"),
        (LOINC, "79087-3"),
        (LOINC, "83289-9"),
        (LOINC, "89927-8"),
        (SNOMED, "504981000119108"),
    }
)
SCAN_ORDER_TEXT = ("calcium scor", "cac", "agatston")

# --- the fhircac CodeSystem ---------------------------------------------------------------------------
# code → (display, definition). profiles/CodeSystem-fhircac.json is generated from this.
FHIRCAC_CONCEPTS: dict[str, tuple[str, str]] = {
    CAC_TOTAL: ("Total coronary artery calcium score (Agatston)", "Whole-heart Agatston score of one scan."),
    "cac-left-main": ("Left main CAC score (Agatston)", "Agatston score of the left main coronary artery."),
    "cac-lad": ("LAD CAC score (Agatston)", "Agatston score of the left anterior descending artery."),
    "cac-lcx": ("LCx CAC score (Agatston)", "Agatston score of the left circumflex artery."),
    "cac-rca": ("RCA CAC score (Agatston)", "Agatston score of the right coronary artery."),
    CAC_PERCENTILE: ("CAC percentile", "Age/sex/race percentile reported with the scan."),
    CAC_VOLUME: ("CAC volume score (mm3)", "Calcium volume score; carried, not interpreted."),
    CAC_MASS: ("CAC mass score (mg)", "Calcium mass score; carried, not interpreted."),
    "cac-risk-assessment": ("CAC interpretation", "A fhircac interpretation of a CAC score."),
    "cac-care-plan": ("CAC follow-up plan", "Considerations and follow-up proposed after a CAC score."),
    "mesa-chd-10y-with-cac": ("10-year hard CHD risk, MESA with CAC", "MESA risk score including CAC."),
    "mesa-chd-10y-without-cac": ("10-year hard CHD risk, MESA without CAC", "MESA risk score without CAC."),
    "pce-ascvd-10y": ("10-year ASCVD risk, Pooled Cohort Equations", "PCE 10-year ASCVD risk."),
    "cac-band-0": ("CAC 0", "Agatston score 0."),
    "cac-band-1-99": ("CAC 1-99", "Agatston score above 0 and below 100."),
    "cac-band-100-399": ("CAC 100-399", "Agatston score 100 to below 400."),
    "cac-band-400": ("CAC ≥400", "Agatston score 400 or more."),
    "metabolic-active": ("Metabolically active", "At least one metabolic marker off target (source 002)."),
    "metabolic-calm": ("Metabolically calm", "Measured metabolic markers on target (source 002)."),
    "metabolic-unknown": ("Metabolic state unknown", "Too few markers measured to say."),
    "repeat-cac-scan": ("Repeat CAC scan", "A repeat calcium score, not before the earliest sensible date."),
    "lab-monitoring": ("Lab monitoring", "Re-measure the markers a rule depends on."),
    "therapy-consideration": ("Therapy to consider", "A therapy statement to discuss; not an order."),
    "workup-consideration": ("Work-up to consider", "A test or referral to discuss; not an order."),
    "lifestyle": ("Lifestyle plan item", "One item of the lifestyle plan."),
    HIGH_BLEEDING_RISK: ("Raised bleeding risk", "A documented raised risk of bleeding (aspirin decisions)."),
    FAMILY_HISTORY_PREMATURE_CHD: (
        "Family history of premature coronary heart disease",
        "First-degree relative with coronary heart disease before 55 (male) or 65 (female); "
        "used as an Observation code with a boolean value.",
    ),
}

# --- CDS Hooks override reasons (service choice) ----------------------------------------------------
# code → (display, definition); a card offers the ones that fit it. profiles/ has the CodeSystem.
OVERRIDE_REASONS: dict[str, tuple[str, str]] = {
    "already-addressed": ("Already discussed or addressed", "The point of the card has been dealt with."),
    "patient-declined": ("Patient declined", "The patient chose otherwise after discussion."),
    "clinical-judgement": ("Clinical judgement differs", "The clinician weighs this patient differently."),
    "other-indication": (
        "Ordered for another indication",
        "The order serves a purpose the card's rule does not consider.",
    ),
    "specialist-advice": ("Specialist advice", "A cardiologist or other specialist advised otherwise."),
    "data-incorrect": ("Patient data incorrect", "The data the card relied on is wrong or out of date."),
}
