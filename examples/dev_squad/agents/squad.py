"""What the squad's agents share: reading a ticket, the agent's own name and
level (from the pipeline's env), and the notes and documents they can look
things up in.

A ticket looks like
{"id": "SQ-101", "title": "...", "area": "backend", "points": 2,
 "acceptance": ["...", "..."],
 "open_questions": ["..."],   # optional: the analyst must find answers
 "needs": ["..."]}            # optional: documents the developer must have
"""

import os
import re

# Decisions the product owner has written down: (words a question must
# contain, the answer).
PRODUCT_NOTES = [
    (("refund", "currency"), "refunds use the currency of the original payment (product notes, pricing)"),
    (("export", "timezone"), "exports use UTC (product notes, reporting)"),
]

# Documents in the repository a developer can build on.
REPO_DOCS = {
    "payments API v1 spec": "docs/payments-api-v1.yaml",
    "design system": "docs/design-system.md",
}

# Browsers the QA runner has.
QA_BROWSERS = ("chrome", "firefox")

# Edge cases the tech lead asks tests for, by area.
EDGE_CASES = {
    "backend": ["an empty request body", "a caller without a session"],
    "frontend": ["a 320px wide screen", "a slow network"],
}


class BadTicket(Exception):
    """The ticket cannot be worked on; the message says why."""


def me():
    """(name, level) of the agent running this script, from its env."""
    return os.environ.get("AGENT_NAME", "agent"), os.environ.get("LEVEL", "")


def ticket(inp):
    """The ticket's fields, checked."""
    title = inp.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadTicket("the ticket has no title")
    acceptance = inp.get("acceptance")
    if not isinstance(acceptance, list) or not acceptance or not all(isinstance(a, str) for a in acceptance):
        raise BadTicket("the ticket has no acceptance criteria (a list of sentences)")
    area = inp.get("area") if inp.get("area") in EDGE_CASES else "backend"
    points = inp.get("points")
    points = points if isinstance(points, int) and not isinstance(points, bool) and 0 < points <= 100 else 3
    questions = [q for q in listed(inp.get("open_questions")) if isinstance(q, str)]
    needs = [n for n in listed(inp.get("needs")) if isinstance(n, str)]
    return {"title": title.strip(), "acceptance": acceptance, "area": area, "points": points,
            "open_questions": questions, "needs": needs}


def listed(value):
    """value when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def strings(value):
    """The strings of a list; [] for anything else."""
    return [v for v in listed(value) if isinstance(v, str)]


def slug(text, words=6):
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words]) or "item"


def test_name(text):
    return "test_" + slug(text).replace("-", "_")
