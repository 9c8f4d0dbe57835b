"""Shared by the lighting example's agents: read baton's request from stdin,
write one reply to stdout, report the usage a model call would have had."""

import json
import sys


def request():
    return json.loads(sys.stdin.readline())


def reply(body, tokens_in=0, tokens_out=0):
    if tokens_in or tokens_out:
        body["usage"] = {"model": "house-lighting-1", "input_tokens": tokens_in, "output_tokens": tokens_out}
    sys.stdout.write(json.dumps(body, sort_keys=True))


def output(out, tokens_in=0, tokens_out=0):
    reply({"output": out}, tokens_in, tokens_out)


def fail(message, retryable=False):
    reply({"error": {"message": message, "retryable": retryable}})
