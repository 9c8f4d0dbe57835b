#!/usr/bin/env python3
"""Analyses a ticket (the `analyst` role: the product manager, or the tech
lead when the product manager is full). Open questions are looked up in the
product notes; one the notes do not answer blocks the ticket, with what was
tried, until a person decides."""

from baton_agent import log, reply_blocked, reply_output, run, task_input
from squad import PRODUCT_NOTES, BadTicket, me, ticket


def answer(question):
    words = question.lower()
    for keys, said in PRODUCT_NOTES:
        if all(k in words for k in keys):
            return said
    return None


def keywords(question):
    common = {"should", "which", "what", "with", "that", "the", "or", "it", "be", "do", "a"}
    return [w for w in question.lower().rstrip("?").split() if len(w) > 3 and w not in common][:3]


def handle(request):
    name, _ = me()
    try:
        t = ticket(task_input(request))
    except BadTicket as e:
        reply_blocked(request, f"cannot analyse: {e}", attempted=["read the ticket"], severity="medium")
        return
    answers = []
    for q in t["open_questions"]:
        said = answer(q)
        if said is None:
            log(f"no answer in the product notes: {q}")
            reply_blocked(
                request,
                f"needs a product decision: {q}",
                attempted=[
                    f"searched the product notes for {', '.join(keywords(q))}",
                    f"read the closed {t['area']} tickets",
                    "asked the product owner in the ticket (no answer yet)",
                ],
                severity="medium",
            )
            return
        log(f"answered from the notes: {q} -> {said}")
        answers.append({"question": q, "answer": said})
    size = "small" if t["points"] <= 2 else "medium" if t["points"] <= 5 else "large"
    reply_output(
        request,
        {
            "analyst": name,
            "requirements": t["acceptance"],
            "answers": answers,
            "size": size,
        },
        model="claude-sonnet-4-5",
    )


if __name__ == "__main__":
    run(handle)
