#!/usr/bin/env python3
"""Builds a prior-authorisation request for input.procedure with input.payer.

Runs only for tasks that name both (the pipeline's `when`).
"""

from baton_agent import log, reply_error, reply_output, run
from codes import CPT_DESCRIPTIONS

# Procedures each payer wants authorised before they are done.
NEEDS_AUTH = {
    "aetna": {"93015", "73721", "72148", "71046"},
    "unitedhealthcare": {"73721", "72148", "93015"},
    "medicare": {"72148"},
    "bluecross": {"73721", "72148", "97161"},
}


def handle(request):
    task_input = request["task"]["input"]
    payer = str(task_input.get("payer", "")).strip()
    procedure = str(task_input.get("procedure", "")).strip()
    soap = request["outputs"].get("documentation") or {}
    coding = request["outputs"].get("coding") or {}

    description = CPT_DESCRIPTIONS.get(procedure)
    if description is None:
        reply_error(request, f"unknown procedure code {procedure!r}; expected a CPT code such as 73721",
                    retryable=False)
        return
    rules = NEEDS_AUTH.get(payer.lower().replace(" ", ""))
    if rules is None:
        reply_error(request, f"no authorisation rules for payer {payer!r}; known: {', '.join(sorted(NEEDS_AUTH))}",
                    retryable=False)
        return

    ordered = {c["code"] for c in coding.get("ordered", [])}
    diagnoses = [c["code"] for c in coding.get("icd10", [])]
    required = procedure in rules
    log(f"{payer}: {procedure} {'needs' if required else 'does not need'} authorisation")
    out = {
        "payer": payer,
        "procedure": {"code": procedure, "description": description},
        "required": required,
        "ordered_in_plan": procedure in ordered,
        "diagnoses": diagnoses,
    }
    if required:
        out["request"] = {
            "justification": f"{soap.get('assessment', '')} {soap.get('plan', '')}".strip(),
            "history": soap.get("subjective", ""),
            "findings": soap.get("objective", ""),
            "urgency": "routine",
        }
    if procedure not in ordered:
        log(f"warning: the plan does not order {procedure}")
    reply_output(request, out)


if __name__ == "__main__":
    run(handle)
