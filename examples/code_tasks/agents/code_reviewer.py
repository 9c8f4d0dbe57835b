#!/usr/bin/env python3
"""Reviews the implementer's code by reading it (Python's ast): the function
is there under the task's name, has a docstring, raises what the task's
cases expect, and swallows no errors with a bare except. Concerns go back to
the implementer as feedback (the phase's send_back)."""

import ast

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
from spec import call_text, raising_cases


def raised_names(func):
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                names.add(exc.id)
    return names


def concerns_of(inp, code):
    name = inp.get("function")
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return [f"the code does not parse: {e.msg} at line {e.lineno}"]
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    if not funcs:
        return [f"there is no function named {name}"]
    func = funcs[0]
    concerns = []
    if not ast.get_docstring(func):
        concerns.append(f"add a docstring to {name} that says what it returns and what it raises")
    raised = raised_names(func)
    for n, case in raising_cases(inp):
        if case["raises"] not in raised:
            concerns.append(
                f"error handling: {name} must raise {case['raises']} for invalid input "
                f"(case {n}: {call_text(name, case)}), and nothing in it raises {case['raises']}"
            )
    for node in ast.walk(func):
        if isinstance(node, ast.ExceptHandler) and node.type is None:
            concerns.append(f"a bare except at line {node.lineno} hides every error; catch what you expect")
    return concerns


def handle(request):
    inp = task_input(request)
    code = earlier(request, "implement").get("code")
    if not isinstance(code, str) or not code.strip():
        concerns = ["there is no code to review (outputs.implement.code is empty)"]
    else:
        concerns = concerns_of(inp, code)
    may_send_to, rounds, _ = send_back_offer(request)
    verdict = {
        "verdict": "approved" if not concerns else "changes requested",
        "concerns": concerns,
        "round": rounds + 1,
    }
    for c in concerns:
        log(f"concern: {c}")
    if not concerns:
        log("code approved")
        reply_output(request, verdict, model="claude-haiku-4-5")
        return
    feedback = "Code review: " + "; ".join(f"({n}) {c}" for n, c in enumerate(concerns, 1)) + "."
    if "implement" not in may_send_to:
        # The phase may not send back: a person reads the concerns instead.
        reply_review(request, feedback, verdict, model="claude-haiku-4-5")
        return
    reply_send_back(request, "implement", feedback, verdict, model="claude-haiku-4-5")


if __name__ == "__main__":
    run(handle)
