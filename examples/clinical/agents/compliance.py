#!/usr/bin/env python3
"""Checks that every suggested code is supported by the documentation.

Findings are reported in the output (status "issues"); deciding what to do
with them is the QA phase's job.
"""

from baton_agent import log, reply_error, reply_output, run
from codes import ICD10, has_words, uncertainty

SYMPTOM_EXPLAINED_BY = {code: explained for _, code, _, explained in ICD10 if explained}


def handle(request):
    soap = request["outputs"].get("documentation")
    coding = request["outputs"].get("coding")
    if not isinstance(soap, dict) or not isinstance(coding, dict):
        reply_error(request, "needs the documentation and coding outputs", retryable=False)
        return
    icd10 = coding.get("icd10", [])
    cpt = coding.get("cpt", [])
    codes = {c["code"] for c in icd10}
    issues = []

    for c in icd10:
        section = c["evidence"]["section"]
        words = c["evidence"]["words"]
        text = soap.get(section, "")
        if not has_words(text, words):
            issues.append({"code": c["code"], "problem": f"'{' '.join(words)}' is not in the {section}",
                           "advice": "remove the code or document the condition"})
            continue
        qualifier = uncertainty(text, words[0])
        if qualifier:
            issues.append({"code": c["code"],
                           "problem": f"diagnosis is uncertain ('{qualifier} {words[0]}') but coded as confirmed",
                           "advice": "outpatient rules: code the presenting signs and symptoms instead"})
        explained = [e for e in SYMPTOM_EXPLAINED_BY.get(c["code"], ()) if e in codes]
        if explained:
            issues.append({"code": c["code"], "problem": f"symptom coded beside {', '.join(explained)}, which explains it",
                           "advice": "drop the symptom code"})

    for c in cpt:
        if c["code"] == "99214" and len(icd10) < 2:
            issues.append({"code": "99214", "problem": "moderate complexity visit with fewer than two problems addressed",
                           "advice": "use 99213 or document the additional problems"})
        if c["evidence"].get("section") == "objective" and not has_words(soap.get("objective", ""), c["evidence"]["words"]):
            issues.append({"code": c["code"], "problem": "service not documented as performed",
                           "advice": "remove the code or document the service"})
    if cpt and not icd10:
        issues.append({"code": cpt[0]["code"], "problem": "services billed without any diagnosis",
                       "advice": "add the diagnosis that makes the services necessary"})

    for issue in issues:
        log(f"issue {issue['code']}: {issue['problem']}")
    log(f"checked {len(icd10) + len(cpt)} code(s): {len(issues)} issue(s)")
    reply_output(request, {
        "status": "issues" if issues else "pass",
        "checked": sorted(codes | {c["code"] for c in cpt}),
        "issues": issues,
    })


if __name__ == "__main__":
    run(handle)
