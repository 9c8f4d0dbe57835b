#!/usr/bin/env python3
"""Writes the task's function as Python source (output.code).

The first draft of some functions falls short (see catalogue.py). Sent back
with feedback, the implementer fixes what the feedback names: a docstring,
error handling for invalid input, or the bug behind a failing test. It
cannot change what a task's cases ask for: when a test still fails with
nothing left to fix, it says so in its notes and hands the same code on.
"""

from baton_agent import earlier, feedback_of, log, reply_blocked, reply_output, run, task_input
from catalogue import FUNCTIONS, source
from spec import BadTask, function_name


def fixes_named(feedback):
    """The draft flaws a reviewer's feedback asks to fix."""
    text = feedback.lower()
    named = set()
    if "docstring" in text:
        named.add("docstring")
    if "error handling" in text or "raise" in text or "invalid input" in text:
        named.add("checks")
    if "fail:" in text or "error:" in text or "traceback" in text:
        named.add("bug")
    return named


def handle(request):
    inp = task_input(request)
    try:
        name = function_name(inp)
    except BadTask as e:
        reply_blocked(request, f"cannot implement: {e}", attempted=["read input.function"], severity="medium")
        return
    if name not in FUNCTIONS:
        reply_blocked(
            request,
            f"no implementation of {name} is known",
            attempted=[f"looked up {name} among: {', '.join(sorted(FUNCTIONS))}"],
            severity="medium",
        )
        return
    plan = earlier(request, "plan")
    feedback = feedback_of(request)
    flaws = set(FUNCTIONS[name]["draft"])
    notes = []
    if feedback:
        named = fixes_named(feedback)
        fixed = sorted(flaws & named)
        flaws -= named
        for f in fixed:
            notes.append({
                "docstring": "added the docstring",
                "checks": "added the argument checks",
                "bug": "fixed the bug: " + FUNCTIONS[name].get("bug_fix", "as the failing test shows"),
            }[f])
        if "bug" in named and not fixed:
            notes.append("the failing case disagrees with the code and the other cases; nothing to fix here")
    code = source(name, flaws)
    for note in notes:
        log(note)
    log(f"wrote {name}: {len(code.splitlines())} lines")
    steps = plan.get("steps") if isinstance(plan.get("steps"), list) else []
    steps = [s.get("text") for s in steps if isinstance(s, dict)]
    reply_output(
        request,
        {"function": name, "code": code, "notes": notes, "followed": steps},
        model="claude-sonnet-4-5",
    )


if __name__ == "__main__":
    run(handle)
