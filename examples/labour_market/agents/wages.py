#!/usr/bin/env python3
"""Wages: the region's wage survey for the occupation, and how each posting's
offer compares with its median."""

from labour import analyst_pause, for_occupation, log, money, prefetched, reply_output, run, text_field


def handle(request):
    occupation = text_field(request, "occupation")
    data = prefetched(request)
    survey = for_occupation(data.get("wage_survey", []), occupation)
    findings = []
    if survey:
        s = survey[0]
        median = int(s.get("median", 0))
        headline = f"median wage {money(median)}, {s.get('change_pct')}% on last year"
        findings.append({
            "text": f"Survey: median {money(median)}, middle half {money(s.get('p25', 0))} to {money(s.get('p75', 0))}",
            "source": "wage_survey",
        })
        for p in for_occupation(data["postings"], occupation):
            offer = int(p.get("wage", 0))
            side = "above" if offer > median else "below" if offer < median else "at"
            findings.append({
                "text": f"{p.get('employer')} offers {money(offer)}, {side} the median ({p.get('id')})",
                "source": p.get("id"),
            })
    else:
        headline = f"no wage survey for {occupation}"
    for n in for_occupation(data.get("notes", []), occupation):
        if n.get("topic") == "wages":
            findings.append({"text": n.get("text"), "source": "notes"})
    analyst_pause("wages", request["task"].get("id", ""))
    log(headline)
    reply_output(request, {"section": "wages", "headline": headline, "findings": findings})


if __name__ == "__main__":
    run(handle)
