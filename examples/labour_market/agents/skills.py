#!/usr/bin/env python3
"""Skills: the skills postings for the occupation ask for, most asked first."""

from labour import analyst_pause, for_occupation, log, plural, prefetched, reply_output, run, text_field


def handle(request):
    occupation = text_field(request, "occupation")
    data = prefetched(request)
    postings = {p.get("id"): p for p in for_occupation(data["postings"], occupation)}
    counts = {}
    for p in postings.values():
        for skill in p.get("skills", []):
            counts[skill] = counts.get(skill, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    findings = [{"text": f"{skill}: asked for in {n} of {plural(len(postings), 'posting')}", "source": "postings"}
                for skill, n in ranked]
    for n in for_occupation(data.get("notes", []), occupation):
        if n.get("topic") == "skills":
            findings.append({"text": n.get("text"), "source": "notes"})
    headline = f"most asked for: {ranked[0][0]}" if ranked else "no skills listed"
    analyst_pause("skills", request["task"].get("id", ""))
    log(headline)
    reply_output(request, {"section": "skills", "headline": headline, "findings": findings})


if __name__ == "__main__":
    run(handle)
