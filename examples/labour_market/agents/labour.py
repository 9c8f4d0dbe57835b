"""Shared helpers for the labour-market agents: the request, the reply, the
regional dataset, and a few switches a test or a demonstration can set.

A command agent reads one JSON request from stdin and writes one JSON reply
to stdout; lines on stderr are the attempt's trace. Everything here is
deterministic: the same request gives the same reply, byte for byte.

Environment (all optional):
  LABOUR_PREFETCH_LOG     the prefetch agent appends "REGION TASK" to this file
                          each time it loads a region, so a run can count the loads
  LABOUR_ANALYST_DELAY_MS "demand=300,skills=0": an analyst sleeps this long
                          before replying, to change the order analysts finish in
  LABOUR_RENDEZVOUS_DIR   each analyst marks its start in this folder and waits
                          (up to 20 s) until the other analysts of its task have
                          started too: it fails unless they run at the same time
"""

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(os.path.dirname(HERE), "data")
ANALYSTS = ("demand", "wages", "skills")
MODEL = "claude-haiku-4-5"


def log(*parts):
    """A trace line (stderr), flushed at once so it shows live."""
    print(*parts, file=sys.stderr, flush=True)


def _tokens(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, len(text) // 4)


def _send(reply):
    sys.stdout.write(json.dumps(reply, sort_keys=True) + "\n")
    sys.stdout.flush()


def reply_output(request, output, model=MODEL):
    reply = {"output": output}
    if model:
        reply["usage"] = {"model": model, "input_tokens": _tokens(request), "output_tokens": _tokens(output)}
    _send(reply)


def reply_error(message, retryable=False):
    _send({"error": {"message": message, "retryable": retryable}})


class Refusal(Exception):
    """Input the agent cannot work with: becomes a non-retryable error reply."""


def text_field(request, name):
    """A non-empty string field of the task's input."""
    value = (request.get("task") or {}).get("input", {}).get(name)
    if not isinstance(value, str) or not value.strip():
        raise Refusal(f"the task needs a non-empty string `{name}`")
    return value.strip()


def prefetched(request):
    """The regional dataset the prefetch phase loaded."""
    data = (request.get("outputs") or {}).get("prefetch")
    if not isinstance(data, dict) or not isinstance(data.get("postings"), list):
        raise Refusal("no prefetched dataset in outputs.prefetch")
    return data


def for_occupation(rows, occupation):
    want = occupation.casefold()
    return [r for r in rows if isinstance(r, dict) and str(r.get("occupation", "")).casefold() == want]


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def money(value):
    return f"£{int(value):,}"


def analyst_pause(phase, task_id):
    """The switches of the environment: meet the other analysts, then wait."""
    folder = os.environ.get("LABOUR_RENDEZVOUS_DIR")
    if folder:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", task_id)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{safe}.{phase}"), "w"):
            pass
        others = [os.path.join(folder, f"{safe}.{p}") for p in ANALYSTS]
        for _ in range(1000):
            if all(os.path.exists(p) for p in others):
                break
            time.sleep(0.02)
        else:
            raise Refusal("the other analysts of this task did not start while this one ran")
        log("met the other analysts")
    for part in os.environ.get("LABOUR_ANALYST_DELAY_MS", "").split(","):
        name, _, ms = part.partition("=")
        if name.strip() == phase and ms.strip().isdigit():
            time.sleep(int(ms) / 1000.0)


def run(handle):
    """Reads the request, calls handle(request); any failure becomes an error reply."""
    try:
        request = json.load(sys.stdin)
        if not isinstance(request, dict) or not isinstance(request.get("task"), dict):
            raise ValueError("the request is not an object with a task")
    except (ValueError, OSError) as e:
        log(f"cannot read the request: {e}")
        reply_error(f"cannot read the request: {e}")
        return
    log(f"{request.get('phase')} for task {request['task'].get('id')} (attempt {request.get('attempt')})")
    try:
        handle(request)
    except Refusal as e:
        log(f"refused: {e}")
        reply_error(str(e))
    except Exception as e:  # one bad task must not look like a protocol error
        log(f"failed: {type(e).__name__}: {e}")
        reply_error(f"{type(e).__name__}: {e}")
