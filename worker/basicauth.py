"""HTTP Basic credentials as seQura checks them: read from the header, compared in constant time.

Pure functions, shared by cartsync's seQura drop-in (``worker/web/auth.py``) and the sandbox
(``sandbox/state.py``), which both answer as seQura does: 401 for credentials of nobody (or
none), 403 for another merchant's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from typing import Protocol

#: seQura's texts for its 401 and 403 answers, as its API gives them.
ACCESS_DENIED = "Access denied"
NO_ACCESS = "You do not have access to this URL"
#: The text of each refusal :func:`basic_verdict` gives.
REFUSALS = {401: ACCESS_DENIED, 403: NO_ACCESS}


class Credentials(Protocol):
    """An account with a user and a password (a merchant account of either program)."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def same(expected: str, given: str) -> bool:
    """Whether two secrets are equal, in a time that does not tell where they differ."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def basic_verdict(
    authorization: str | None, own: Credentials | None, others: Iterable[Credentials]
) -> int | None:
    """None when the header's credentials are ``own``'s; 403 when they are one of ``others``';
    401 when they are nobody's, or the header holds none."""
    pair = basic_credentials(authorization)
    if pair is None:
        return 401
    user, password = pair
    if own is not None and same(own.username, user) and same(own.password, password):
        return None
    for other in others:
        if same(other.username, user) and same(other.password, password):
            return 403
    return 401
