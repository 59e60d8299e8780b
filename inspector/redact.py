"""Credentials out of every text the station prints, logs, serves or signs.

Why one place: a database URL or a camera stream URL carries a password (`postgresql://station:PW@host/db`,
`rtsp://admin:PW@cam/stream`). Each message that named one hid it its own way, or not at all: a URL spelt
`postgres://` (not parsed by SQLAlchemy's own hiding) went into the /health page, the journal every 10 s and the
signed audit trail, which cannot be edited afterwards.
"""

from __future__ import annotations

import re
from typing import Any

# The authority runs to the last "@" before the path: a password with an unescaped "@" in it is hidden whole.
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<auth>[^/\s]*)@")


def _hidden(m: re.Match) -> str:
    user, colon, _password = m["auth"].partition(":")
    return f"{m['scheme']}{user}:***@" if colon and user else f"{m['scheme']}***@" if colon else m[0]


def safe_url(url: str) -> str:
    """`url` with its password as `***` (the user name kept, as SQLAlchemy shows it); any text with `scheme://user:pw@`
    in it is hidden the same way, parsable or not."""
    return _CREDENTIALS.sub(_hidden, url)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every credential in a URL hidden."""
    if isinstance(value, str):
        return safe_url(value) if "@" in value else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


__all__ = ["redact", "safe_url"]
