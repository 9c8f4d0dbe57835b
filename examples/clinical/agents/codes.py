"""The code tables the clinical agents share: a small keyword-to-code map.

A real deployment would ask a model or a terminology service; a table keeps
the example self-contained and its results predictable.
"""

import re

# (words that must all appear, code, description, codes that explain it away)
# Entries with a non-empty last field are signs or symptoms: they are not
# coded when a confirmed diagnosis accounts for them.
ICD10 = [
    (("stable angina",), "I20.9", "Angina pectoris, unspecified", ()),
    (("hypertension",), "I10", "Essential (primary) hypertension", ()),
    (("type 2 diabetes",), "E11.9", "Type 2 diabetes mellitus without complications", ()),
    (("hyperlipidemia",), "E78.5", "Hyperlipidemia, unspecified", ()),
    (("osteoarthritis", "right knee"), "M17.11", "Unilateral primary osteoarthritis, right knee", ()),
    (("osteoarthritis", "left knee"), "M17.12", "Unilateral primary osteoarthritis, left knee", ()),
    (("lumbar radiculopathy",), "M54.16", "Radiculopathy, lumbar region", ()),
    (("low back pain",), "M54.50", "Low back pain, unspecified", ("M54.16",)),
    (("pneumonia",), "J18.9", "Pneumonia, unspecified organism", ()),
    (("migraine",), "G43.909", "Migraine, unspecified, not intractable, without status migrainosus", ()),
    (("urinary tract infection",), "N39.0", "Urinary tract infection, site not specified", ()),
    (("chest pain",), "R07.9", "Chest pain, unspecified", ("I20.9",)),
    (("chest pressure",), "R07.89", "Other chest pain", ("I20.9",)),
    (("cough",), "R05.9", "Cough, unspecified", ("J18.9",)),
    (("fever",), "R50.9", "Fever, unspecified", ("J18.9", "N39.0")),
    (("headache",), "R51.9", "Headache, unspecified", ("G43.909",)),
    (("knee pain",), "M25.569", "Pain in unspecified knee", ("M17.11", "M17.12")),
]

# Services done during the visit, found in the objective section.
CPT_PERFORMED = [
    (("ecg",), "93000", "Electrocardiogram, routine, with interpretation and report"),
    (("ekg",), "93000", "Electrocardiogram, routine, with interpretation and report"),
    (("point-of-care a1c",), "83036", "Hemoglobin; glycosylated (A1c)"),
    (("urinalysis",), "81003", "Urinalysis, automated, without microscopy"),
]

# Services the plan orders for later.
CPT_ORDERED = [
    (("stress test",), "93015", "Cardiovascular stress test with supervision, interpretation and report"),
    (("chest x-ray",), "71046", "Radiologic examination, chest; 2 views"),
    (("mri", "knee"), "73721", "MRI of lower extremity joint without contrast"),
    (("mri", "lumbar"), "72148", "MRI lumbar spine without contrast"),
    (("urine culture",), "87086", "Culture, bacterial; quantitative colony count, urine"),
    (("physical therapy",), "97161", "Physical therapy evaluation, low complexity"),
]

CPT_DESCRIPTIONS = {code: desc for _, code, desc in CPT_PERFORMED + CPT_ORDERED}
CPT_DESCRIPTIONS.update({
    "99213": "Office visit, established patient, low complexity",
    "99214": "Office visit, established patient, moderate complexity",
})

# Outpatient coding guidelines: a diagnosis qualified by one of these words
# is not confirmed and must not be coded as if it were.
UNCERTAIN = ("possible", "probable", "suspected", "likely", "questionable", "rule out", "r/o")


def has_words(text, words):
    """True when every phrase in `words` appears in `text` as whole words."""
    return all(re.search(r"\b" + re.escape(w) + r"\b", text, re.IGNORECASE) for w in words)


def uncertainty(text, phrase):
    """The qualifier before `phrase` in its sentence, if it is qualified."""
    for sentence in re.split(r"(?<=[.;!?])\s+", text):
        at = sentence.lower().find(phrase.lower())
        if at >= 0:
            before = sentence.lower()[:at]
            for word in UNCERTAIN:
                if re.search(r"\b" + re.escape(word) + r"\b", before):
                    return word
    return None
