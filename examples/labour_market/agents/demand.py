#!/usr/bin/env python3
"""Demand: who is hiring for the occupation in the region, and how many posts.
Reports each posting as the dataset lists it, duplicates included: the merge
removes them."""

from labour import analyst_pause, for_occupation, log, plural, prefetched, reply_output, run, text_field


def handle(request):
    occupation = text_field(request, "occupation")
    data = prefetched(request)
    postings = for_occupation(data["postings"], occupation)
    findings = []
    for p in postings:
        findings.append({
            "text": f"{p.get('employer')}: {plural(int(p.get('openings', 0)), 'opening')} ({p.get('id')}); contact: {p.get('contact')}",
            "source": p.get("id"),
        })
    for n in for_occupation(data.get("notes", []), occupation):
        if n.get("topic") == "demand":
            findings.append({"text": n.get("text"), "source": "notes"})
    distinct = {p.get("id"): p for p in postings}
    openings = sum(int(p.get("openings", 0)) for p in distinct.values())
    headline = (f"{plural(openings, 'opening')} for {occupation} in {plural(len(distinct), 'posting')}"
                if distinct else f"no postings for {occupation}")
    analyst_pause("demand", request["task"].get("id", ""))
    log(headline)
    reply_output(request, {"section": "demand", "headline": headline, "findings": findings})


if __name__ == "__main__":
    run(handle)
