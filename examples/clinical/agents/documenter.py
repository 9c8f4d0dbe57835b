#!/usr/bin/env python3
"""Turns a free-text clinical note (input.note) into a SOAP object.

Labelled notes ("S: ... O: ... A: ... P: ...") are split on their labels;
otherwise each sentence is sorted by the words it uses.
"""

import re

from baton_agent import log, reply_blocked, reply_output, run

SECTIONS = ("subjective", "objective", "assessment", "plan")
LABELS = {"s": "subjective", "o": "objective", "a": "assessment", "p": "plan"}

OBJECTIVE_WORDS = (
    "bp ", "hr ", "temp", "spo2", "exam", "ecg", "ekg", "x-ray", "a1c", "glucose",
    "tender", "swelling", "crackles", "wheez", "reflex", "range of motion", "bmi",
    "urinalysis", "lab", "weight", "straight leg raise",
)
ASSESSMENT_WORDS = (
    "likely", "consistent with", "impression", "assessment", "diagnos", "possible",
    "suspect", "probable", "rule out", "controlled", "uncontrolled",
)
PLAN_WORDS = (
    "plan", "start", "order", "refer", "schedule", "follow up", "follow-up",
    "prescrib", "continue", "recheck", "return", "counsel", "request",
)


def split_labelled(note):
    parts = re.split(r"(?im)(?:^|\s)([SOAP]):\s*", " " + note)
    if len(parts) < 3:
        return None
    soap = {name: [] for name in SECTIONS}
    for label, text in zip(parts[1::2], parts[2::2]):
        soap[LABELS[label.lower()]].append(text.strip())
    return soap


def classify(sentence):
    s = sentence.lower() + " "
    if any(w in s for w in PLAN_WORDS) and not s.startswith(("patient", "pt ")):
        return "plan"
    if any(w in s for w in ASSESSMENT_WORDS):
        return "assessment"
    if any(w in s for w in OBJECTIVE_WORDS) or re.search(r"\d+/\d+", s):
        return "objective"
    return "subjective"


def handle(request):
    note = (request["task"]["input"] or {}).get("note")
    if not isinstance(note, str) or not note.strip():
        log("no note in the task input")
        reply_blocked(request, "the task has no clinical note (input.note) to document")
        return
    soap = split_labelled(note)
    if soap is None:
        soap = {name: [] for name in SECTIONS}
        for sentence in re.split(r"(?<=[.!?])\s+", note.strip()):
            if sentence:
                soap[classify(sentence)].append(sentence)
    out = {}
    for name in SECTIONS:
        text = " ".join(soap[name]).strip()
        out[name] = text or "not documented"
        log(f"{name}: {len(soap[name])} sentence(s)")
    reply_output(request, out)


if __name__ == "__main__":
    run(handle)
