"""Replay tokens: a scenario as one copy-pasteable line.

``of1.`` + URL-safe base64 of the zlib-compressed scenario JSON.  Tokens are
untrusted input (they travel through CI logs and chat): they are bounded in
size before and after decompression, hold only JSON, and are validated like
any scenario.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from onceflow.errors import ScenarioError, TokenError, UnknownComponentError
from onceflow.scenario import Scenario

__all__ = ["PREFIX", "decode", "encode"]

PREFIX = "of1."
MAX_TOKEN_CHARS = 64_000
MAX_JSON_BYTES = 256_000


def encode(scenario: Scenario) -> str:
    data = zlib.compress(scenario.to_json().encode(), 9)
    return PREFIX + base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode(token: str) -> Scenario:
    """The scenario in `token`; TokenError or ScenarioError says what is wrong."""
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
        return Scenario.from_json(text)
    except UnknownComponentError:
        raise  # a valid token naming a component this process has not registered
    except ScenarioError as exc:
        raise TokenError(f"token holds an invalid scenario: {exc}") from None
    except RecursionError:  # Scenario.from_json refuses deep nesting; in case it recursed
        raise TokenError("token holds JSON nested too deeply; refusing it") from None
