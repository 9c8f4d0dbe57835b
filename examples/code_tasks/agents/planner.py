#!/usr/bin/env python3
"""Plans a code task: what to write, how to test it, and (when the plan
reviewer asks) what to do with bad input and how to roll the change back.

A first plan is a draft: what to write and how to test it. Sent back with
the reviewer's concerns, the planner adds what the feedback names: an
error-handling step when it mentions error handling, a rollback step when it
mentions a rollback. A task with "reversible": false gets a rollback step
that says why there is none: the planner cannot invent a way back the task
rules out.
"""

from baton_agent import feedback_of, log, reply_blocked, reply_output, run, task_input
from spec import BadTask, call_text, cases, function_name, raising_cases, risk


def error_handling_step(inp, name):
    raising = raising_cases(inp)
    if raising:
        n, case = raising[0]
        return (
            f"Validate the arguments of {name} and raise {case['raises']} with the bad value "
            f"named (case {n}: {call_text(name, case)}); say so in the docstring"
        )
    return f"Check the types and ranges of {name}'s arguments and raise ValueError naming the bad value"


def rollback_step(inp):
    area = inp.get("area") or "its module"
    if inp.get("reversible") is False:
        why = "; ".join(str(c) for c in inp.get("constraints") or []) or "the task says it is one-way"
        return {"kind": "rollback", "possible": False, "text": f"No rollback: the change cannot be undone ({why})"}
    return {
        "kind": "rollback",
        "possible": True,
        "text": f"Ship behind a flag in {area} and keep the old code path; to roll back, switch the flag off and redeploy the last release",
    }


def handle(request):
    inp = task_input(request)
    try:
        name = function_name(inp)
        found = cases(inp)
    except BadTask as e:
        reply_blocked(
            request,
            f"cannot plan: {e}",
            attempted=["read the task's goal, function and cases"],
            severity="medium",
        )
        return
    feedback = feedback_of(request).lower()
    steps = [
        {"kind": "implement", "text": f"Write {name} for: {inp.get('goal', 'the task')}"},
        {"kind": "test", "text": f"Turn the {len(found)} example cases into unit tests and run them"},
    ]
    addressed = []
    if "error handling" in feedback:
        steps.insert(1, {"kind": "error_handling", "text": error_handling_step(inp, name)})
        addressed.append("error handling: added a step for invalid input")
    if "rollback" in feedback:
        step = rollback_step(inp)
        steps.append(step)
        addressed.append(
            "rollback: added a step" if step["possible"] else f"rollback: none possible; {step['text']}"
        )
    for n, step in enumerate(steps, 1):
        step["n"] = n
        log(f"step {n} [{step['kind']}] {step['text']}")
    plan = {
        "function": name,
        "risk": risk(inp),
        "area": inp.get("area"),
        "steps": steps,
        "addressed": addressed,
    }
    if feedback:
        plan["feedback"] = feedback_of(request)
    reply_output(request, plan, model="claude-sonnet-4-5")


if __name__ == "__main__":
    run(handle)
