"""Helpers for baton command agents: read the request, write one reply.

A command agent reads one JSON request from stdin and writes one JSON reply
to stdout. Anything written to stderr shows up as a trace line in baton.
"""

import json
import sys

DEFAULT_MODEL = "claude-sonnet-4-5"


def read_request():
    """The request: {"task": {"id", "input"}, "phase", "attempt", "outputs", "feedback"}."""
    return json.load(sys.stdin)


def log(*parts):
    """A trace line (stderr), flushed at once so it shows live."""
    print(*parts, file=sys.stderr, flush=True)


def tokens(value):
    """A rough token count: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text) // 4)


def usage(request, output, model=DEFAULT_MODEL):
    return {
        "model": model,
        "input_tokens": tokens(request),
        "output_tokens": tokens(output),
    }


def with_feedback(request, output):
    """Records a reviewer's feedback in the output when the phase was sent back."""
    feedback = request.get("feedback")
    if feedback and isinstance(output, dict):
        output = dict(output, feedback_applied=feedback)
    return output


def _send(reply):
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def reply_output(request, output, model=DEFAULT_MODEL):
    output = with_feedback(request, output)
    _send({"output": output, "usage": usage(request, output, model)})


def reply_review(request, reason, output, model=DEFAULT_MODEL):
    output = with_feedback(request, output)
    _send({"review": {"reason": reason}, "output": output, "usage": usage(request, output, model)})


def reply_blocked(request, reason, model=DEFAULT_MODEL):
    _send({"blocked": {"reason": reason}, "usage": usage(request, reason, model)})


def reply_error(request, message, retryable=False, model=DEFAULT_MODEL):
    _send({"error": {"message": message, "retryable": retryable}, "usage": usage(request, message, model)})


def run(handle):
    """Reads the request, calls handle(request) and turns a crash into an error reply."""
    try:
        request = read_request()
    except (ValueError, OSError) as e:
        log(f"cannot read the request: {e}")
        sys.exit(1)
    log(f"{request.get('phase')} for task {request['task']['id']} (attempt {request.get('attempt')})")
    try:
        handle(request)
    except Exception as e:  # one bad task must not look like a protocol error
        log(f"failed: {type(e).__name__}: {e}")
        reply_error(request, f"{type(e).__name__}: {e}", retryable=False)
