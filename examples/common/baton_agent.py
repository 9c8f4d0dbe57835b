"""Helpers for baton command agents: read the request, write one reply.

A command agent reads one JSON request from stdin and writes one JSON reply
to stdout. Anything written to stderr shows up as a trace line in baton.
"""

import json
import sys

DEFAULT_MODEL = "claude-sonnet-4-5"


def read_request():
    """The request: {"task": {"id", "input"}, "phase", "attempt", "outputs",
    "feedback", "send_back"}."""
    request = json.load(sys.stdin)
    if not isinstance(request, dict) or not isinstance(request.get("task"), dict):
        raise ValueError("the request is not an object with a task")
    return request


def task_input(request):
    """The task's input, always an object."""
    value = request["task"].get("input")
    return value if isinstance(value, dict) else {}


def earlier(request, phase):
    """The output of an earlier phase, always an object ({} when absent)."""
    outputs = request.get("outputs")
    value = outputs.get(phase) if isinstance(outputs, dict) else None
    return value if isinstance(value, dict) else {}


def feedback_of(request):
    """A reviewer's feedback for this attempt, or ""."""
    value = request.get("feedback")
    return value if isinstance(value, str) else ""


def send_back_offer(request):
    """(phases this one may send the task back to, rounds so far, max rounds)
    from the request's send_back; ([], 0, 0) when the phase may not."""
    offer = request.get("send_back")
    if not isinstance(offer, dict):
        return [], 0, 0

    def count(key):
        value = offer.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    to = [t for t in offer.get("to") or [] if isinstance(t, str)] if isinstance(offer.get("to"), list) else []
    return to, count("rounds"), count("max_rounds")


def log(*parts):
    """A trace line (stderr), flushed at once so it shows live."""
    print(*parts, file=sys.stderr, flush=True)


def tokens(value):
    """A rough token count: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text) // 4)


def usage(request, output, model):
    return {
        "model": model,
        "input_tokens": tokens(request),
        "output_tokens": tokens(output),
    }


def _send(reply):
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def reply_output(request, output, model=DEFAULT_MODEL):
    reply = {"output": output}
    if model:
        reply["usage"] = usage(request, output, model)
    _send(reply)


def reply_send_back(request, to, feedback, output, model=DEFAULT_MODEL):
    """Returns the task to phase `to` with `feedback` (the phase must allow it)."""
    reply = {"send_back": {"to": to, "feedback": feedback}, "output": output}
    if model:
        reply["usage"] = usage(request, output, model)
    _send(reply)


def reply_blocked(request, reason, attempted=(), severity=None, model=DEFAULT_MODEL):
    blocked = {"reason": reason}
    if attempted:
        blocked["attempted"] = list(attempted)
    if severity:
        blocked["severity"] = severity
    reply = {"blocked": blocked}
    if model:
        reply["usage"] = usage(request, reason, model)
    _send(reply)


def reply_review(request, reason, output, attempted=(), severity=None, model=DEFAULT_MODEL):
    """Asks a person to look at `output` before the task goes on."""
    review = {"reason": reason}
    if attempted:
        review["attempted"] = list(attempted)
    if severity:
        review["severity"] = severity
    reply = {"review": review, "output": output}
    if model:
        reply["usage"] = usage(request, output, model)
    _send(reply)


def reply_error(request, message, retryable=False):
    _send({"error": {"message": message, "retryable": retryable}})


def run(handle):
    """Reads the request, calls handle(request) and turns a crash into an error reply."""
    try:
        request = read_request()
    except (ValueError, OSError) as e:
        log(f"cannot read the request: {e}")
        _send({"error": {"message": f"cannot read the request: {e}", "retryable": False}})
        return
    log(f"{request.get('phase')} for task {request['task'].get('id')} (attempt {request.get('attempt')})")
    try:
        handle(request)
    except Exception as e:  # one bad task must not look like a protocol error
        log(f"failed: {type(e).__name__}: {e}")
        reply_error(request, f"{type(e).__name__}: {e}", retryable=False)
