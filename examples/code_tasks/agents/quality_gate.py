#!/usr/bin/env python3
"""The quality gate: real checks on the implementer's code.

Writes the code as solution.py and the task's example cases as
test_solution.py into a temporary folder, then runs
`python3 -m py_compile solution.py` and `python3 -m unittest -v test_solution`
there. Both pass: the output lists the checks. A test fails: while the phase
has rounds left the task goes back to implement with the test output as
feedback; after that the phase fails with the test output (the pipeline's
on_failure = "review" hands it to a person).
"""

import os
import subprocess
import sys
import tempfile

from baton_agent import earlier, log, reply_error, reply_output, reply_send_back, run, send_back_offer, task_input
from spec import BadTask, call_text, cases, function_name

CHECK_TIMEOUT_SECONDS = 60
MAX_REPORT_CHARS = 6000


def test_module(name, found):
    """unittest source for the cases: one test method per case."""
    lines = [
        "import unittest",
        "",
        f"from solution import {name}",
        "",
        "",
        "class ExampleCases(unittest.TestCase):",
    ]
    for n, case in enumerate(found, 1):
        call = call_text(name, case)
        lines.append(f"    def test_case_{n}(self):")
        if "raises" in case:
            lines.append(f"        with self.assertRaises({case['raises']}):")
            lines.append(f"            {call}")
        elif isinstance(case["expect"], float):
            lines.append(f"        self.assertAlmostEqual({call}, {case['expect']!r})")
        else:
            lines.append(f"        self.assertEqual({call}, {case['expect']!r})")
        lines.append("")
    lines += ["", "if __name__ == \"__main__\":", "    unittest.main()"]
    return "\n".join(lines) + "\n"


def check(cmd, cwd):
    """(passed, what it printed) for one command."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=CHECK_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return False, f"did not finish within {CHECK_TIMEOUT_SECONDS}s"
    said = (done.stdout + done.stderr).strip()
    # Paths inside the temporary folder are given relative to it.
    for prefix in {os.path.realpath(cwd), cwd}:
        said = said.replace(prefix + os.sep, "")
    return done.returncode == 0, said


def shorten(text):
    if len(text) <= MAX_REPORT_CHARS:
        return text
    return "…" + text[-MAX_REPORT_CHARS:]


def handle(request):
    inp = task_input(request)
    try:
        name = function_name(inp)
        found = cases(inp)
    except BadTask as e:
        reply_error(request, f"quality gate: {e}")
        return
    code = earlier(request, "implement").get("code")
    if not isinstance(code, str) or not code.strip():
        reply_error(request, "quality gate: there is no code (outputs.implement.code)")
        return
    python = sys.executable or "python3"
    with tempfile.TemporaryDirectory(prefix="quality-gate-") as folder:
        with open(os.path.join(folder, "solution.py"), "w", encoding="utf-8") as f:
            f.write(code)
        with open(os.path.join(folder, "test_solution.py"), "w", encoding="utf-8") as f:
            f.write(test_module(name, found))
        checks = []
        compiled, said = check([python, "-m", "py_compile", "solution.py"], folder)
        checks.append({"check": "python3 -m py_compile solution.py", "passed": compiled, "output": said})
        log(f"py_compile: {'passed' if compiled else 'failed'}")
        if compiled:
            tested, said = check([python, "-m", "unittest", "-v", "test_solution"], folder)
            checks.append({"check": "python3 -m unittest -v test_solution", "passed": tested, "output": said})
            log(f"unittest: {'passed' if tested else 'failed'} ({len(found)} cases)")
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        reply_output(request, {"passed": True, "tests": len(found), "checks": checks}, model=None)
        return
    report = f"`{failed[0]['check']}` failed:\n{shorten(failed[0]['output'])}"
    may_send_to, rounds, max_rounds = send_back_offer(request)
    if "implement" in may_send_to and rounds < max_rounds:
        log("sending the code back to implement with the test output")
        reply_send_back(
            request, "implement", report,
            {"passed": False, "tests": len(found), "checks": checks}, model=None,
        )
        return
    reply_error(request, f"quality gate: {report}")


if __name__ == "__main__":
    run(handle)
