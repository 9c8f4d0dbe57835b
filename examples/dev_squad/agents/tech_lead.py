#!/usr/bin/env python3
"""The tech lead: analyses a ticket when the product manager is full (phase
analyze, as analyst.py does), plans it into subtasks (phase plan) and
reviews the developer's work (phase review). A review finds every subtask changed and
every edge case of the plan tested, or sends the work back to implement with
what is missing."""

import analyst
from baton_agent import (
    earlier,
    log,
    reply_blocked,
    reply_output,
    reply_review,
    reply_send_back,
    run,
    send_back_offer,
    task_input,
)
from squad import EDGE_CASES, BadTicket, listed, slug, strings, test_name, ticket


def plan(request, t):
    prefix = "api" if t["area"] == "backend" else "web/src"
    ext = "py" if t["area"] == "backend" else "tsx"
    subtasks = [
        {"id": f"{request['task'].get('id')}.{n}", "do": a, "file": f"{prefix}/{slug(a, 3).replace('-', '_')}.{ext}"}
        for n, a in enumerate(t["acceptance"], 1)
    ]
    for s in subtasks:
        log(f"subtask {s['id']}: {s['do']} ({s['file']})")
    reply_output(
        request,
        {"subtasks": subtasks, "edge_cases": EDGE_CASES[t["area"]], "estimate": t["points"]},
        model="claude-sonnet-4-5",
    )


def review(request, t):
    planned = earlier(request, "plan")
    work = earlier(request, "implement")
    changed = {c.get("subtask") for c in listed(work.get("changes")) if isinstance(c, dict)}
    tests = set(strings(work.get("tests")))
    concerns = []
    subtasks = [s for s in listed(planned.get("subtasks")) if isinstance(s, dict)]
    missing = [str(s.get("id")) for s in subtasks if s.get("id") not in changed]
    if missing:
        concerns.append(f"no change for subtask {', '.join(missing)}")
    untested = [e for e in strings(planned.get("edge_cases")) if test_name(e) not in tests]
    if untested:
        concerns.append(f"add tests for the edge cases: {'; '.join(untested)}")
    verdict = {"verdict": "approved" if not concerns else "changes requested",
               "concerns": concerns, "developer": work.get("developer")}
    if not concerns:
        log(f"approved the work of {work.get('developer')}")
        reply_output(request, verdict, model="claude-sonnet-4-5")
        return
    for c in concerns:
        log(f"concern: {c}")
    feedback = "Review: " + "; ".join(concerns) + "."
    may_send_to, _, _ = send_back_offer(request)
    if "implement" not in may_send_to:
        # The phase may not send back: a person reads the concerns instead.
        reply_review(request, feedback, verdict, model="claude-sonnet-4-5")
        return
    reply_send_back(request, "implement", feedback, verdict, model="claude-sonnet-4-5")


def handle(request):
    if request.get("phase") == "analyze":
        analyst.handle(request)
        return
    try:
        t = ticket(task_input(request))
    except BadTicket as e:
        reply_blocked(request, f"cannot {request.get('phase')}: {e}", attempted=["read the ticket"], severity="medium")
        return
    if request.get("phase") == "review":
        review(request, t)
    else:
        plan(request, t)


if __name__ == "__main__":
    run(handle)
