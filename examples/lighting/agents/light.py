"""Makes a lighting instruction for one scene from its emotion.

A first attempt drives the key light past full for the strongest scenes;
the phase's output_schema refuses it (intensity is at most 1) and the next
attempt keeps within range, as a model asked again would."""

from lighting_agent import output, request

PALETTE = {
    "tension": ("#3a4a8c", "#0b0f1f"),
    "joy": ("#ffd27a", "#ff9f5a"),
    "sorrow": ("#6c7a99", "#2b3140"),
    "calm": ("#f2e6c9", "#c9d6e8"),
}

req = request()
scene = req["item"]
mood = req["outputs"]["enrich"]
emotion = mood["emotion"]
key_colour, fill_colour = PALETTE[emotion]
key = 0.4 + 0.7 * mood["strength"]
if req["attempt"] > 1:
    key = min(key, 1.0)
fill = round(key * (0.3 if mood["night"] else 0.6), 2)
groups = [
    {"id": "key", "color": key_colour, "intensity": round(key, 2)},
    {"id": "fill", "color": fill_colour, "intensity": fill},
]
if mood["night"]:
    groups.append({"id": "practicals", "color": "#ffb46b", "intensity": 0.25})
output({
    "scene_id": scene["id"],
    "emotion": emotion,
    "groups": groups,
    "transition": "cut" if emotion == "tension" else "fade",
}, tokens_in=200, tokens_out=80)
