#!/usr/bin/env python3
"""Suggests ICD-10 and CPT codes from the documentation phase's SOAP note."""

from baton_agent import log, reply_error, reply_output, run
from codes import CPT_DESCRIPTIONS, CPT_ORDERED, CPT_PERFORMED, ICD10, has_words

MODEL = "claude-haiku-4-5"


def handle(request):
    soap = request["outputs"].get("documentation")
    if not isinstance(soap, dict):
        reply_error(request, "no documentation output to code from", retryable=False, model=MODEL)
        return
    assessment = soap.get("assessment", "")
    subjective = soap.get("subjective", "")
    objective = soap.get("objective", "")
    plan = soap.get("plan", "")

    found = []
    for words, code, desc, explained_by in ICD10:
        if explained_by:
            # Symptoms may come from the patient's own account too.
            where = [("assessment", assessment), ("subjective", subjective)]
        else:
            where = [("assessment", assessment)]
        for section, text in where:
            if has_words(text, words):
                found.append({"code": code, "description": desc, "evidence": {"section": section, "words": list(words)},
                              "_explained_by": explained_by})
                break
    codes = {f["code"] for f in found}
    icd10 = []
    for f in found:
        explained = [c for c in f.pop("_explained_by") if c in codes]
        if explained:
            log(f"dropped symptom {f['code']}: explained by {', '.join(explained)}")
            continue
        if f["code"] not in {c["code"] for c in icd10}:
            icd10.append(f)

    cpt = [{
        "code": "99214" if len(icd10) >= 2 else "99213",
        "description": CPT_DESCRIPTIONS["99214" if len(icd10) >= 2 else "99213"],
        "evidence": {"section": "assessment", "problems_addressed": len(icd10)},
    }]
    for words, code, desc in CPT_PERFORMED:
        if has_words(objective, words) and code not in {c["code"] for c in cpt}:
            cpt.append({"code": code, "description": desc, "evidence": {"section": "objective", "words": list(words)}})
    ordered = []
    for words, code, desc in CPT_ORDERED:
        if has_words(plan, words):
            ordered.append({"code": code, "description": desc, "evidence": {"section": "plan", "words": list(words)}})

    log(f"ICD-10: {', '.join(c['code'] for c in icd10) or 'none'}")
    log(f"CPT this visit: {', '.join(c['code'] for c in cpt)}; ordered: {', '.join(c['code'] for c in ordered) or 'none'}")
    reply_output(request, {"icd10": icd10, "cpt": cpt, "ordered": ordered}, model=MODEL)


if __name__ == "__main__":
    run(handle)
