#!/usr/bin/env python3
"""QA: checks each acceptance criterion against the developer's tests and
runs it in the browsers the runner has. A criterion that needs a browser
the runner lacks goes to a person, with what was checked instead."""

from baton_agent import earlier, log, reply_blocked, reply_output, reply_review, run, task_input
from squad import QA_BROWSERS, BadTicket, strings, test_name, ticket

UNAVAILABLE = ("safari", "internet explorer")


def handle(request):
    try:
        t = ticket(task_input(request))
    except BadTicket as e:
        reply_blocked(request, f"cannot test: {e}", attempted=["read the ticket"], severity="medium")
        return
    tests = set(strings(earlier(request, "implement").get("tests")))
    checked, untested, elsewhere = [], [], []
    for criterion in t["acceptance"]:
        browser = next((b for b in UNAVAILABLE if b in criterion.lower()), None)
        if browser:
            elsewhere.append((criterion, browser))
        elif test_name(criterion) in tests:
            checked.append(criterion)
        else:
            untested.append(criterion)
    for c in checked:
        log(f"checked: {c}")
    out = {"checked": checked, "untested": untested,
           "not_checked": [c for c, _ in elsewhere], "browsers": list(QA_BROWSERS)}
    if untested:
        reply_review(
            request,
            f"no test covers: {'; '.join(untested)}",
            out,
            attempted=[f"looked for {test_name(c)} among the developer's tests" for c in untested],
            severity="medium",
        )
        return
    if elsewhere:
        criterion, browser = elsewhere[0]
        reply_review(
            request,
            f"cannot check \"{criterion}\": the QA runner has no {browser.title()}",
            out,
            attempted=[
                f"ran the acceptance checks on {' and '.join(b.title() for b in QA_BROWSERS)}",
                f"looked for a {browser.title()} runner in CI (there is none)",
            ],
            severity="low",
        )
        return
    reply_output(request, out, model="claude-haiku-4-5")


if __name__ == "__main__":
    run(handle)
