"""Splits a screenplay into scenes at its headings (INT./EXT.)."""

import re

from lighting_agent import fail, output, request

HEADING = re.compile(r"^(INT\.|EXT\.|INT/EXT\.)\s+(.+?)\s+-\s+(DAY|NIGHT|DAWN|DUSK|CONTINUOUS)\s*$")

req = request()
script = req["task"]["input"].get("script")
if not isinstance(script, str) or not script.strip():
    fail("the task has no script: give it a \"script\" field with the screenplay's text")
    raise SystemExit(0)

scenes = []
for line in script.splitlines():
    m = HEADING.match(line.strip())
    if m:
        scenes.append({
            "id": "S%d" % (len(scenes) + 1),
            "heading": line.strip(),
            "place": m.group(1).rstrip("."),
            "location": m.group(2).title(),
            "time": m.group(3),
            "text": "",
        })
    elif scenes:
        scenes[-1]["text"] = (scenes[-1]["text"] + " " + line.strip()).strip()

if not scenes:
    fail("no scene headings found (lines like \"INT. KITCHEN - NIGHT\")")
else:
    output({"title": req["task"]["input"].get("title", req["task"]["id"]), "scenes": scenes},
           tokens_in=len(script) // 4, tokens_out=60 * len(scenes))
