"""Source citations, written once so every statement cites its rule the same way.

``REFERENCE §n`` is shared/clinical/REFERENCE.md; ``source 00n`` the texts in shared/sources/.
"""

from __future__ import annotations

SOURCE_000 = "source 000 (Can coronary calcium scores decrease?)"
SOURCE_001 = "source 001 (Reversing/stabilising coronary calcification)"
SOURCE_002 = "source 002 (A lifestyle-first calcium score policy)"
SOURCE_003 = "source 003 (CT coronary calcium scoring procedure)"
SOURCE_004 = "source 004 (Receiving a high calcium score)"

CHOLESTEROL_2018 = (
    "2018 AHA/ACC cholesterol guideline (Grundy et al., Circulation 2019;139:e1082, "
    "doi:10.1161/CIR.0000000000000625)"
)
PREVENTION_2019 = (
    "2019 ACC/AHA primary prevention guideline (Arnett et al., Circulation 2019;140:e596, "
    "doi:10.1161/CIR.0000000000000678)"
)
GUIDELINE_2026 = (
    "2026 ACC/AHA multisociety dyslipidemia guideline (Blumenthal et al., Circulation 2026;153:e1154, "
    "doi:10.1161/CIR.0000000000001423)"
)
CAC_DRS = "CAC-DRS (Hecht et al., J Cardiovasc Comput Tomogr 2018;12:185, doi:10.1016/j.jcct.2018.03.008)"
CAC_STAGE = "CAC stage (Maron et al., JACC Adv 2024;3:101287)"
MESA_PERCENTILE = (
    "MESA CAC reference (McClelland et al., Circulation 2006;113:30, doi:10.1161/CIRCULATIONAHA.105.580696)"
)
MESA_RISK = "MESA 10-year CHD risk (McClelland et al., JACC 2015;66:1643, doi:10.1016/j.jacc.2015.08.035)"
PCE = "Pooled Cohort Equations (Goff et al., JACC 2014;63:2935, doi:10.1016/j.jacc.2013.11.005)"
ARTERIAL_AGE = "MESA arterial age (McClelland et al., Am J Cardiol 2009)"
SQUARE_ROOT_METHOD = "square-root method (Hokanson et al., AJR 2004)"
REPEATABILITY = "interscan repeatability (Sevrukov et al., AJR 2005)"
RAPID_PROGRESSION = (
    "rapid progression and first MI in statin-treated patients (Raggi, Callister, Shaw, Arterioscler "
    "Thromb Vasc Biol 2004;24:1272)"
)
USPSTF_2022 = "USPSTF 2022 aspirin recommendation (JAMA 2022;327:1577, doi:10.1001/jama.2022.4983)"
CHEST_PAIN_2021 = (
    "2021 AHA/ACC chest pain guideline (Gulati et al., Circulation 2021;144:e368, "
    "doi:10.1161/CIR.0000000000001029)"
)
ADA_DIAGNOSIS = "ADA Standards of Care: diagnosis of diabetes (HbA1c ≥6.5%, 48 mmol/mol)"
VERY_HIGH_CAC = "CAC ≥1000 (Peng et al., CAC Consortium, JACC Cardiovasc Imaging 2020)"
WARRANTY = "CAC 0 warranty period (Dzaye et al., JACC Cardiovasc Imaging 2021)"
NLA_2021 = "NLA scientific statement on CAC (Orringer et al., J Clin Lipidol 2021)"


def cite(*parts: str) -> str:
    """One citation string: the REFERENCE section first, then the sources behind it."""
    return "; ".join(parts)
