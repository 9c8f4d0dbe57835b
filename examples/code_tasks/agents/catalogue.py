"""The functions the implementer knows how to write.

Each entry gives the module lines it needs (imports, constants), the
signature, the docstring, the argument checks, the body, and how the first
draft falls short: without the docstring ("docstring"), without the checks
("checks"), or with a real bug in the body ("bug", using "buggy_body").
"""

FUNCTIONS = {
    "clamp_score": {
        "signature": "clamp_score(score, low=0.0, high=1.0)",
        "doc": "Return score limited to [low, high]; raise ValueError when low > high.",
        "checks": [
            "if low > high:",
            "    raise ValueError(f\"low {low} is above high {high}\")",
        ],
        "body": ["return max(low, min(high, score))"],
        "draft": [],
    },
    "chunk_text": {
        "signature": "chunk_text(text, size)",
        "doc": "Split text into consecutive pieces of at most size characters.",
        "checks": [
            "if size <= 0:",
            "    raise ValueError(f\"size must be positive, not {size}\")",
        ],
        "body": ["return [text[i:i + size] for i in range(0, len(text), size)]"],
        "draft": ["docstring"],
    },
    "parse_duration": {
        "prelude": [
            "import re",
            "",
            "_UNITS = {\"h\": 3600, \"m\": 60, \"s\": 1}",
        ],
        "signature": "parse_duration(text)",
        "doc": "Seconds in a duration like '1h30m', '2m' or '45s'; ValueError for anything else.",
        "checks": [
            "if not isinstance(text, str) or not re.fullmatch(r\"(\\d+[hms])+\", text.strip()):",
            "    raise ValueError(f\"not a duration: {text!r}\")",
        ],
        "body": ["return sum(int(n) * _UNITS[u] for n, u in re.findall(r\"(\\d+)([hms])\", text))"],
        "draft": ["docstring", "checks"],
    },
    "batch_ids": {
        "signature": "batch_ids(ids, size)",
        "doc": "Split ids into lists of at most size ids, in order.",
        "checks": [
            "if size <= 0:",
            "    raise ValueError(f\"size must be positive, not {size}\")",
        ],
        "body": ["return [list(ids[i:i + size]) for i in range(0, len(ids), size)]"],
        "draft": [],
    },
    "percentile": {
        "prelude": ["import math"],
        "signature": "percentile(values, p)",
        "doc": "The p-th percentile of values by the nearest-rank method (0 < p <= 100).",
        "checks": [
            "if not values:",
            "    raise ValueError(\"no values\")",
            "if not 0 < p <= 100:",
            "    raise ValueError(f\"p must be in (0, 100], not {p}\")",
        ],
        "body": [
            "ordered = sorted(values)",
            "rank = math.ceil(p / 100 * len(ordered))",
            "return ordered[rank - 1]",
        ],
        # Rounds the rank down and forgets that ranks count from 1.
        "buggy_body": [
            "ordered = sorted(values)",
            "return ordered[int(p / 100 * len(ordered))]",
        ],
        "draft": ["bug"],
        "bug_fix": "the rank now counts from 1 and rounds up (nearest rank)",
    },
    "slugify": {
        "prelude": ["import re"],
        "signature": "slugify(title)",
        "doc": "A URL slug: lower case, each run of other characters one hyphen, none at the ends.",
        "checks": [
            "if not isinstance(title, str):",
            "    raise TypeError(f\"title must be a string, not {type(title).__name__}\")",
        ],
        "body": ["return re.sub(r\"[^a-z0-9]+\", \"-\", title.lower()).strip(\"-\")"],
        "draft": [],
    },
    "dedupe_keep_order": {
        "signature": "dedupe_keep_order(items)",
        "doc": "Items without repeats, the first of each kept, in their order.",
        "checks": [],
        "body": [
            "seen = set()",
            "kept = []",
            "for item in items:",
            "    if item not in seen:",
            "        seen.add(item)",
            "        kept.append(item)",
            "return kept",
        ],
        "draft": [],
    },
}


def source(name, flaws):
    """The module's text for function `name` with the given flaws."""
    entry = FUNCTIONS[name]
    lines = list(entry.get("prelude", []))
    if lines:
        lines += ["", ""]
    lines.append(f"def {entry['signature']}:")
    if "docstring" not in flaws:
        lines.append(f"    \"\"\"{entry['doc']}\"\"\"")
    if "checks" not in flaws:
        lines += ["    " + line for line in entry["checks"]]
    body = entry["buggy_body"] if "bug" in flaws else entry["body"]
    lines += ["    " + line for line in body]
    return "\n".join(lines) + "\n"
