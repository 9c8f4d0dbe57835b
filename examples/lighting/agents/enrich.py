"""Reads one scene's emotion and its strength from its words."""

from lighting_agent import fail, output, request

WORDS = {
    "tension": ["gun", "door creaks", "whisper", "shadow", "footsteps", "hides"],
    "joy": ["laughs", "dance", "cheers", "wedding", "ecstatic", "sings"],
    "sorrow": ["cries", "funeral", "alone", "rain", "tears", "goodbye"],
    "calm": ["reads", "sleeps", "tea", "quiet", "breeze"],
}

req = request()
scene = req["item"]
text = scene.get("text", "").lower()
if "[corrupt]" in text:
    fail("scene %s is unreadable: its text is corrupt" % scene.get("id", "?"))
    raise SystemExit(0)
scores = {emotion: sum(text.count(w) for w in words) for emotion, words in WORDS.items()}
emotion = max(sorted(scores), key=lambda e: scores[e]) if any(scores.values()) else "calm"
strength = min(1.0, 0.3 + 0.2 * scores.get(emotion, 0))
if "ecstatic" in text:
    strength = 1.0
output({"scene_id": scene["id"], "emotion": emotion, "strength": round(strength, 2),
        "night": scene.get("time") == "NIGHT"}, tokens_in=120, tokens_out=30)
