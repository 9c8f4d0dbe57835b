#!/usr/bin/env python3
"""Loads a region's shared dataset (vacancy postings, a wage survey, analysts'
notes) once, for every agent that reads it. The pipeline caches this phase by
region, so each region is loaded once across all tasks and runs."""

import json
import os
import re

from labour import DATA_DIR, Refusal, log, reply_output, run, text_field


def known_regions():
    return sorted(f[:-5] for f in os.listdir(DATA_DIR) if f.endswith(".json"))


def handle(request):
    region = text_field(request, "region").casefold()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", region) or region not in known_regions():
        raise Refusal(f"unknown region {region!r}; known regions: {', '.join(known_regions())}")
    with open(os.path.join(DATA_DIR, region + ".json"), encoding="utf-8") as f:
        data = json.load(f)
    counter = os.environ.get("LABOUR_PREFETCH_LOG")
    if counter:
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{region} {request['task'].get('id')}\n".encode())
        finally:
            os.close(fd)
    log(f"loaded {data.get('dataset')}: {len(data.get('postings', []))} postings")
    reply_output(request, data, model=None)


if __name__ == "__main__":
    run(handle)
