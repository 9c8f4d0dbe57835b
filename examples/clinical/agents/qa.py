#!/usr/bin/env python3
"""The final check. Asks for a person's review when something looks off,
otherwise passes the coded encounter on."""

from baton_agent import log, reply_output, reply_review, run


def findings(outputs):
    found = []
    soap = outputs.get("documentation") or {}
    for section in ("subjective", "objective", "assessment", "plan"):
        if soap.get(section, "not documented") == "not documented":
            found.append(f"SOAP section {section} is not documented")
    coding = outputs.get("coding") or {}
    if not coding.get("icd10"):
        found.append("no diagnosis was coded")
    compliance = outputs.get("compliance") or {}
    for issue in compliance.get("issues", []):
        found.append(f"compliance: {issue['code']} {issue['problem']}")
    auth = outputs.get("prior_auth")
    if isinstance(auth, dict):
        if not auth.get("ordered_in_plan", True):
            found.append(f"prior authorisation asked for {auth['procedure']['code']}, which the plan does not order")
        if auth.get("required") and not auth.get("diagnoses"):
            found.append("prior authorisation without a supporting diagnosis")
    return found


def handle(request):
    outputs = request["outputs"]
    coding = outputs.get("coding") or {}
    auth = outputs.get("prior_auth")
    found = findings(outputs)
    if isinstance(auth, dict):
        auth_status = "ready to submit" if auth.get("required") else "not required by payer"
    else:
        auth_status = "not requested"
    out = {
        "status": "ready",
        "diagnoses": [c["code"] for c in coding.get("icd10", [])],
        "services": [c["code"] for c in coding.get("cpt", [])],
        "ordered": [c["code"] for c in coding.get("ordered", [])],
        "prior_auth": auth_status,
        "findings": found,
    }
    for f in found:
        log(f"finding: {f}")
    if found and not request.get("feedback"):
        out["status"] = "needs review"
        reply_review(request, "; ".join(found), out)
        return
    if found:
        # Sent back with a reviewer's guidance: the findings are settled.
        log("findings settled by the reviewer's feedback")
    reply_output(request, out)


if __name__ == "__main__":
    run(handle)
