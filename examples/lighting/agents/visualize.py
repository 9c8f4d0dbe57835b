"""A one-line storyboard of a lit scene: each group's intensity as a bar."""

from lighting_agent import output, request

req = request()
lit = req["outputs"]["light"]
bars = " ".join("%s %s" % (g["id"], "#" * round(g["intensity"] * 10)) for g in lit["groups"])
output({"scene_id": lit["scene_id"], "preview": "[%s] %s" % (req["item"]["heading"], bars)})
