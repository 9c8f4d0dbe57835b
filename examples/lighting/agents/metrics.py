"""Figures over every scene of a script (the fan-in): how many were lit,
which were skipped, the mean key intensity, and the palette's spread."""

from lighting_agent import output, request

req = request()
scenes = req["outputs"]["parse"]["scenes"]
lit = req["outputs"]["light"]
done = [(s, l) for s, l in zip(scenes, lit) if l is not None]
skipped = [s["id"] for s, l in zip(scenes, lit) if l is None]
keys = [next(g["intensity"] for g in l["groups"] if g["id"] == "key") for _, l in done]
colours = sorted({g["color"] for _, l in done for g in l["groups"]})
emotions = {}
for _, l in done:
    emotions[l["emotion"]] = emotions.get(l["emotion"], 0) + 1
output({
    "scenes": len(scenes),
    "lit": len(done),
    "skipped": skipped,
    "mean_key_intensity": round(sum(keys) / len(keys), 3) if keys else 0,
    "max_intensity": max((g["intensity"] for _, l in done for g in l["groups"]), default=0),
    "palette": colours,
    "emotions": dict(sorted(emotions.items())),
})
