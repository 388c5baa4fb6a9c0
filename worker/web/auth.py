"""Who is calling: HTTP Basic with a merchant's seQura credentials, or a producer's token.

Pure functions over a header and the configured accounts; comparisons in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.producers import ProducerAccount, ProducerDirectory
from cartsync.worker.errors import ConfigurationError, UnknownMerchant

#: seQura's texts (its 401 and 403 answers, as its API gives them).
ACCESS_DENIED = "Access denied"
NO_ACCESS = "You do not have access to this URL"


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


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def merchant_verdict(
    merchants: MerchantDirectory, merchant: str, authorization: str | None
) -> int | None:
    """None when the credentials are ``merchant``'s; 403 when they are another merchant's;
    401 when they are nobody's (or missing), as seQura answers."""
    pair = basic_credentials(authorization)
    if pair is None:
        return 401
    user, password = pair
    try:
        own = merchants.get(merchant)
    except (UnknownMerchant, ConfigurationError):
        own = None
    if own is not None and _same(own.username, user) and _same(own.password, password):
        return None
    for ref in merchants.refs():
        other = merchants.get(ref)
        if _same(other.username, user) and _same(other.password, password):
            return 403
    return 401


def producer_for(producers: ProducerDirectory, authorization: str | None) -> ProducerAccount | None:
    """The producer a bearer token belongs to; None when the header holds no known token."""
    token = bearer_token(authorization)
    return None if token is None else producers.authenticate(token)
