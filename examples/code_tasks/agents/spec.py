"""Reading a code task's input: its function name and its example cases.

A task looks like
{"id": "RAE-001", "goal": "...", "risk": "high", "area": "ranking",
 "function": "clamp_score",
 "cases": [{"args": [1.7, 0, 1], "expect": 1}, {"args": [0.5, 1, 0], "raises": "ValueError"}]}
Optional: "reversible": false and "constraints": ["..."].
"""

import keyword

# Exceptions a case may expect; the quality gate writes them into tests.
KNOWN_EXCEPTIONS = ("ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError")


class BadTask(Exception):
    """The task's input cannot be worked on; the message says why."""


def function_name(inp):
    name = inp.get("function")
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise BadTask(f"the task names no usable function (input.function is {name!r})")
    return name


def cases(inp):
    """The task's cases, checked: each has a list of args and an expect or a raises."""
    found = inp.get("cases")
    if not isinstance(found, list) or not found:
        raise BadTask("the task has no example cases (input.cases)")
    checked = []
    for n, case in enumerate(found, 1):
        if not isinstance(case, dict) or not isinstance(case.get("args"), list):
            raise BadTask(f"case {n} has no list of args")
        if "raises" in case:
            if case["raises"] not in KNOWN_EXCEPTIONS:
                raise BadTask(
                    f"case {n} expects {case['raises']!r}; known: {', '.join(KNOWN_EXCEPTIONS)}"
                )
        elif "expect" not in case:
            raise BadTask(f"case {n} has neither expect nor raises")
        checked.append(case)
    return checked


def call_text(name, case):
    """clamp_score(0.5, 1.0, 0.0), as the case calls it."""
    return f"{name}({', '.join(repr(a) for a in case['args'])})"


def raising_cases(inp):
    """(number, case) of each case that expects an exception; [] for bad input."""
    try:
        return [(n, c) for n, c in enumerate(cases(inp), 1) if "raises" in c]
    except BadTask:
        return []


def risk(inp):
    value = inp.get("risk")
    return value if value in ("low", "medium", "high") else "medium"
