"""Replay tokens: a scenario as one copy-pasteable line.

``of1.`` + URL-safe base64 of the zlib-compressed scenario JSON.  A finding on a
restored timeline adds one key, ``"timeline"`` (a `TimelineSpec`: which snapshot,
fork or rollback, parallelism, rescale-chain links), so that a replay restores
exactly that timeline; a token without it is about the run's original timeline
(every token of earlier versions).  `decode` returns the scenario,
`decode_timeline` the scenario and its timeline.  Tokens are
untrusted input (they travel through CI logs and chat): they are bounded in
size before and after decompression, hold only JSON, and are validated like
any scenario.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib

from onceflow.errors import ScenarioError, TokenError, UnknownComponentError
from onceflow.scenario import MAX_JSON_DEPTH, Scenario, json_error
from onceflow.timelines import TimelineSpec

__all__ = ["PREFIX", "decode", "decode_timeline", "encode", "split_timeline"]

PREFIX = "of1."
#: the key of a token's JSON that names the timeline a finding is on
TIMELINE_KEY = "timeline"
MAX_TOKEN_CHARS = 64_000
MAX_JSON_BYTES = 256_000


def encode(scenario: Scenario, timeline: TimelineSpec | None = None) -> str:
    """`scenario` as a token; with a `timeline` other than the original run, the token
    names that timeline too (and replays it)."""
    if not isinstance(scenario, Scenario):
        raise TokenError(f"encode takes a onceflow.Scenario, got {type(scenario).__name__}")
    if timeline is not None and not isinstance(timeline, TimelineSpec):
        raise TokenError(f"timeline must be a onceflow.TimelineSpec, got "
                         f"{type(timeline).__name__}")
    if timeline is None or timeline.original:
        return PREFIX + _pack(scenario.to_json())
    data = scenario.to_data()
    data[TIMELINE_KEY] = timeline.to_data()
    return PREFIX + _pack(json.dumps(data, sort_keys=True, separators=(",", ":")))


def _pack(text: str) -> str:
    return base64.urlsafe_b64encode(zlib.compress(text.encode(), 9)).decode().rstrip("=")


def decode(token: str) -> Scenario:
    """The scenario in `token`; TokenError or ScenarioError says what is wrong."""
    return decode_timeline(token)[0]


def decode_timeline(token: str) -> tuple[Scenario, TimelineSpec]:
    """The scenario in `token` and the timeline of it the token names (the original
    run for a `of1.` token); TokenError or ScenarioError says what is wrong."""
    if not isinstance(token, str):
        raise TokenError("a token is a string starting with 'of1.'")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError(f"token is {len(token)} characters long; at most {MAX_TOKEN_CHARS}")
    if not token.startswith("of"):
        raise TokenError("not an onceflow token: it should start with 'of1.' "
                         "(copy the whole line printed after 'replay:')")
    if token == PREFIX.rstrip("."):
        raise TokenError(f"the token is cut off after {token!r}: copy the whole line printed "
                         "after 'replay:'")
    if not token.startswith(PREFIX):
        version = token.split(".", 1)[0]
        raise TokenError(f"token version {version!r} is not readable by this onceflow "
                         f"(it reads {PREFIX[:-1]!r}); replay it with the onceflow that printed it")
    body = token[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token is damaged: not valid base64 (was it cut short when copied?)") from None
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(raw, MAX_JSON_BYTES)
    except zlib.error:
        raise TokenError("token is damaged: it does not decompress (was it cut short?)") from None
    if inflater.unconsumed_tail:
        raise TokenError(f"token expands beyond {MAX_JSON_BYTES} bytes; refusing it")
    if not inflater.eof:
        raise TokenError("token is damaged: it ends early (was it cut short when copied?)")
    try:
        return split_timeline(text)
    except UnknownComponentError:
        raise  # a valid token naming a component this process has not registered
    except ScenarioError as exc:
        raise TokenError(f"token holds an invalid scenario: {exc}") from None
    except RecursionError:  # Scenario.from_json refuses deep nesting; in case it recursed
        raise TokenError("token holds JSON nested too deeply; refusing it") from None


def split_timeline(text: str | bytes) -> tuple[Scenario, TimelineSpec]:
    """The scenario of a token's (or a file's) JSON and the timeline its "timeline" key
    names (the original run without one); ScenarioError says what is wrong."""
    data = _json(text)
    if isinstance(data, dict) and TIMELINE_KEY in data:
        data = dict(data)
        timeline = TimelineSpec.from_data(data.pop(TIMELINE_KEY))
        return Scenario.from_data(data), timeline
    return Scenario.from_data(data), TimelineSpec()


def _json(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise ScenarioError("<json>", f"nested deeper than {MAX_JSON_DEPTH} levels; a "
                                      "scenario nests 5") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScenarioError("<json>", json_error(exc)) from None
