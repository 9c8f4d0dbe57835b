"""Would drive the lighting rig: writes each scene's DMX-like frame to the
file in BATON_LIGHTING_RIG (a stand-in for a real controller). Off by
default in the pipeline: set `enabled = true` on the phase to use it."""

import json
import os

from lighting_agent import fail, output, request

req = request()
rig = os.environ.get("BATON_LIGHTING_RIG")
if not rig:
    fail("no rig: set BATON_LIGHTING_RIG to the file that stands for the controller")
    raise SystemExit(0)
frames = [l for l in req["outputs"]["light"] if l is not None]
with open(rig, "a") as f:
    for lit in frames:
        f.write(json.dumps({"scene": lit["scene_id"], "channels": [round(g["intensity"] * 255) for g in lit["groups"]]}) + "\n")
output({"frames_sent": len(frames)})
