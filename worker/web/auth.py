"""Who is calling: HTTP Basic with a merchant's seQura credentials, or a producer's token.

Pure functions over a header and the configured accounts; comparisons in constant time
(HTTP Basic as seQura checks it is ``worker/basicauth.py``, which the sandbox shares).
"""

from __future__ import annotations

from cartsync.config.merchants import MerchantDirectory
from cartsync.config.producers import ProducerAccount, ProducerDirectory
from cartsync.worker.basicauth import basic_verdict
from cartsync.worker.errors import ConfigurationError, UnknownMerchant


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def merchant_verdict(
    merchants: MerchantDirectory, merchant: str, authorization: str | None
) -> int | None:
    """None when the credentials are ``merchant``'s; 403 when they are another merchant's;
    401 when they are nobody's (or missing), as seQura answers."""
    try:
        own = merchants.get(merchant)
    except (UnknownMerchant, ConfigurationError):
        own = None
    others = (merchants.get(ref) for ref in merchants.refs())
    return basic_verdict(authorization, own, others)


def producer_for(producers: ProducerDirectory, authorization: str | None) -> ProducerAccount | None:
    """The producer a bearer token belongs to; None when the header holds no known token."""
    token = bearer_token(authorization)
    return None if token is None else producers.authenticate(token)
