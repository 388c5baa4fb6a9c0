"""Failed console logins, counted per user name and per client address in Redis keys that
expire with their window, so that guessing passwords is slow whichever of the two changes.

Keys hold a digest of the name or address, never the text typed (someone may type a password
into the name field). The window is fixed (it starts at the first failure and the key expires
with it), which is enough to turn a million guesses into months.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from cartsync.worker import keys

#: Failed logins one user name may have in a window; the next attempt, with the right
#: password or not, is answered 429 until the window ends.
MAX_USER_FAILURES = 5
#: Failed logins one client address may have in a window: higher than a name's, as an
#: office or a reverse proxy puts many people behind one address.
MAX_ADDRESS_FAILURES = 20
#: Seconds a window lasts.
WINDOW_S = 60


def digest(text: str) -> str:
    """What a key holds instead of a name or an address."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def retry_after(
    counts: Sequence[int], ttls: Sequence[int], limits: Sequence[int], window_s: int
) -> int | None:
    """Seconds to wait before trying again when any counter is at its limit (the longest
    remaining window among those), or None when logging in may be tried."""
    waits = [
        ttl if ttl > 0 else window_s
        for count, ttl, limit in zip(counts, ttls, limits, strict=True)
        if count >= limit
    ]
    return max(waits) if waits else None


@dataclass(frozen=True)
class Verdict:
    """After a failed login: the counts now, and whether this failure reached a limit."""

    user_failures: int
    address_failures: int
    limited: bool


class LoginThrottle:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        *,
        max_user: int = MAX_USER_FAILURES,
        max_address: int = MAX_ADDRESS_FAILURES,
        window_s: int = WINDOW_S,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.limits = (max_user, max_address)
        self.window_s = window_s

    def _keys(self, name: str, address: str) -> tuple[str, str]:
        return (
            keys.console_login_failures(self.prefix, "user", digest(name.strip().casefold())),
            keys.console_login_failures(self.prefix, "addr", digest(address)),
        )

    def blocked(self, name: str, address: str) -> int | None:
        """Seconds to wait before this name may try from this address, or None."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._keys(name, address):
            pipe.get(key)
            pipe.ttl(key)
        user, user_ttl, addr, addr_ttl = pipe.execute()
        return retry_after(
            [int(user or 0), int(addr or 0)],
            [int(user_ttl), int(addr_ttl)],
            self.limits,
            self.window_s,
        )

    def failed(self, name: str, address: str) -> Verdict:
        """Count a failed login; each counter's window starts with its first failure."""
        pipe = self.client.pipeline(transaction=True)
        for key in self._keys(name, address):
            pipe.set(key, 0, ex=self.window_s, nx=True)
            pipe.incr(key)
        _, user, _, addr = pipe.execute()
        limited = int(user) == self.limits[0] or int(addr) == self.limits[1]
        return Verdict(int(user), int(addr), limited)

    def succeeded(self, name: str) -> None:
        """A right password clears the name's failures (never the address's: one account's
        owner must not reset the count of an address others guess from)."""
        self.client.delete(self._keys(name, "")[0])
