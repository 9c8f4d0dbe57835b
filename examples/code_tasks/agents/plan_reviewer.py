#!/usr/bin/env python3
"""Reviews a plan. Every plan needs a step that writes the function and one
that tests it; a high-risk plan also needs a step for invalid input (error
handling) and a rollback step that actually rolls back. Concerns go back to
the planner as feedback (the phase's send_back), naming what to add and what
to keep."""

from baton_agent import (
    earlier,
    log,
    reply_output,
    reply_review,
    reply_send_back,
    run,
    send_back_offer,
    task_input,
)
from spec import call_text, raising_cases, risk


def concerns_of(inp, plan):
    steps = plan.get("steps") if isinstance(plan.get("steps"), list) else []
    steps = [s for s in steps if isinstance(s, dict)]
    kinds = {s.get("kind") for s in steps}
    name = plan.get("function") or inp.get("function") or "the function"
    area = inp.get("area") or "this area"
    concerns, kept = [], []
    if "implement" not in kinds:
        concerns.append(f"no step writes {name}")
    if "test" not in kinds:
        concerns.append("no step tests the example cases")
    if risk(inp) == "high":
        if "error_handling" in kinds:
            kept.append("the error handling step")
        else:
            raising = raising_cases(inp)
            example = (
                f"; case {raising[0][0]} expects {raising[0][1]['raises']} from {call_text(name, raising[0][1])}"
                if raising
                else ""
            )
            concerns.append(f"missing error handling: say what {name} does with invalid input{example}")
        rollback = [s for s in steps if s.get("kind") == "rollback"]
        if not rollback:
            concerns.append(
                f"no rollback step: a high-risk change to {area} needs a way back (a flag to switch off, or a backup to restore)"
            )
        elif not rollback[0].get("possible", True):
            concerns.append(
                f"the rollback step says the change cannot be undone; a high-risk change to {area} needs a way back, "
                "e.g. keep the old version until the new one is verified"
            )
        else:
            kept.append("the rollback step")
    return concerns, kept


def handle(request):
    inp = task_input(request)
    plan = earlier(request, "plan")
    concerns, kept = concerns_of(inp, plan)
    may_send_to, rounds, _ = send_back_offer(request)
    verdict = {
        "verdict": "approved" if not concerns else "changes requested",
        "concerns": concerns,
        "round": rounds + 1,
    }
    for c in concerns:
        log(f"concern: {c}")
    if not concerns:
        log("plan approved")
        reply_output(request, verdict, model="claude-haiku-4-5")
        return
    feedback = "Plan rejected: " + "; ".join(f"({n}) {c}" for n, c in enumerate(concerns, 1)) + "."
    if kept:
        feedback += " Keep " + " and ".join(kept) + "."
    if "plan" not in may_send_to:
        # The phase may not send back: a person reads the concerns instead.
        reply_review(request, feedback, verdict, model="claude-haiku-4-5")
        return
    reply_send_back(request, "plan", feedback, verdict, model="claude-haiku-4-5")


if __name__ == "__main__":
    run(handle)
