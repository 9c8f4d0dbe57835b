#!/usr/bin/env python3
"""Merges the analysts' reports into one, deterministically:

- sections in a fixed order (summary, demand, wages, skills), whatever order
  the analysts finished in or their outputs arrive in;
- a finding already given, in this section or an earlier one, is dropped
  (compared without case, spacing or trailing punctuation);
- email addresses and phone numbers become [masked];
- sources listed once each, sorted.

The same outputs give the same report, byte for byte."""

import re

from labour import ANALYSTS, Refusal, log, reply_output, run, text_field

TITLES = {"summary": "Summary", "demand": "Demand", "wages": "Wages", "skills": "Skills"}
MASK = "[masked]"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{7,}\d(?!\w)")


def mask(text):
    """The text with emails and phone numbers (10 digits or more) masked, and how many."""
    count = 0

    def email(_m):
        nonlocal count
        count += 1
        return MASK

    def phone(m):
        nonlocal count
        if sum(c.isdigit() for c in m.group(0)) < 10:
            return m.group(0)
        count += 1
        return MASK

    text = EMAIL.sub(email, text)
    text = PHONE.sub(phone, text)
    return text, count


def same_key(text):
    return re.sub(r"\s+", " ", text).strip().rstrip(".;:!").casefold()


def handle(request):
    region = text_field(request, "region")
    occupation = text_field(request, "occupation")
    outputs = request.get("outputs") or {}
    data = outputs.get("prefetch") if isinstance(outputs.get("prefetch"), dict) else {}
    reports = {}
    for name in ANALYSTS:
        report = outputs.get(name)
        if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
            raise Refusal(f"no report from the {name} analyst (outputs.{name})")
        reports[name] = report

    seen = set()
    removed = 0
    masked = 0
    sources = set()

    def keep(text):
        nonlocal removed, masked
        text, n = mask(str(text))
        key = same_key(text)
        if not key or key in seen:
            removed += 1
            return None
        masked += n
        seen.add(key)
        return text

    sections = []
    summary = [keep(f"{TITLES[name]}: {reports[name].get('headline', 'no headline')}") for name in ANALYSTS]
    sections.append({"id": "summary", "title": TITLES["summary"], "findings": [s for s in summary if s]})
    for name in ANALYSTS:
        findings = []
        for f in reports[name]["findings"]:
            if not isinstance(f, dict):
                continue
            text = keep(f.get("text", ""))
            if text is None:
                continue
            findings.append(text)
            if f.get("source") not in (None, "notes", "postings", "wage_survey"):
                sources.add(str(f["source"]))
        sections.append({"id": name, "title": TITLES[name], "findings": findings})

    dataset = str(data.get("dataset", region))
    place = str(data.get("name", region))
    period = str(data.get("period", ""))
    source_lines = [f"{dataset}: {', '.join(sorted(sources))}" if sources else dataset]
    lines = [f"# Labour market: {occupation} in {place}" + (f" ({period})" if period else ""), ""]
    for s in sections:
        lines.append(f"## {s['title']}")
        lines.extend(f"- {f}" for f in s["findings"] or ["nothing found"])
        lines.append("")
    lines.append("## Sources")
    lines.extend(f"- {s}" for s in source_lines)
    report = "\n".join(lines) + "\n"
    log(f"merged {len(sections)} sections; {removed} duplicates removed; {masked} personal details masked")
    reply_output(request, {
        "region": region,
        "occupation": occupation,
        "sections": sections,
        "sources": source_lines,
        "duplicates_removed": removed,
        "masked": masked,
        "report": report,
    })


if __name__ == "__main__":
    run(handle)
