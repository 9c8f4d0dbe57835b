#!/usr/bin/env python3
"""A developer (the `developer` role: the senior developer while it has
room, else the junior). Works on each subtask of the plan and writes a test
per acceptance criterion; the senior also tests the plan's edge cases from
the start, the junior once a review asks. A ticket that needs a document
the repository does not have blocks, with what was tried."""

import os
import time

from baton_agent import earlier, feedback_of, log, reply_blocked, reply_output, run, task_input
from squad import REPO_DOCS, BadTicket, listed, me, slug, strings, test_name, ticket


def work_seconds():
    """How long the work takes (the pipeline's WORK_SECONDS), within 0..30."""
    try:
        seconds = float(os.environ.get("WORK_SECONDS", "0"))
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), 30.0) if seconds == seconds else 0.0


def handle(request):
    name, level = me()
    try:
        t = ticket(task_input(request))
    except BadTicket as e:
        reply_blocked(request, f"cannot implement: {e}", attempted=["read the ticket"], severity="medium")
        return
    missing = [n for n in t["needs"] if n not in REPO_DOCS]
    if missing:
        need = missing[0]
        log(f"{name}: {need} is nowhere to be found")
        closest = max(sorted(REPO_DOCS), key=lambda d: len(set(d.lower().split()) & set(need.lower().split())))
        reply_blocked(
            request,
            f"cannot start without the {need}",
            attempted=[
                f"looked for the {need} in the repository's docs ({', '.join(sorted(REPO_DOCS.values()))})",
                f"read the {closest} ({REPO_DOCS[closest]}): it does not describe what the ticket asks for",
                f"asked the {t['area']} channel for the {need}",
            ],
            severity="high",
        )
        return
    planned = earlier(request, "plan")
    subtasks = [s for s in listed(planned.get("subtasks")) if isinstance(s, dict)]
    feedback = feedback_of(request)
    log(f"{name} ({level or 'developer'}) takes {len(subtasks)} subtask(s)")
    time.sleep(work_seconds())
    changes = [{"subtask": s.get("id"), "file": s.get("file"), "summary": s.get("do")} for s in subtasks]
    tests = [test_name(a) for a in t["acceptance"]]
    if level == "senior" or "edge case" in feedback:
        tests += [test_name(e) for e in strings(planned.get("edge_cases"))]
    out = {
        "developer": name,
        "level": level,
        "branch": f"{str(request['task'].get('id', 'task')).lower()}-{slug(t['title'], 4)}",
        "changes": changes,
        "tests": tests,
    }
    if feedback:
        out["addressed"] = feedback
    reply_output(request, out, model="claude-opus-4-5" if level == "senior" else "claude-haiku-4-5")


if __name__ == "__main__":
    run(handle)
