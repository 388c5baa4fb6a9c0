"""The order ledger: per-order versions in Redis, and the per-order send lock.

Cart states are full snapshots, so only the newest matters and an older one must never be
sent after a newer one. The ledger records, per order, the newest version accepted for
sending (``enqueued``) and the newest version seQura accepted (``delivered``).
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

import redis

from cartsync.worker import keys

# Accept an update: check its version against the ledger, record it, and schedule its message,
# all in one step so that a version is never recorded without its message (which would make
# every older message "superseded" by a state that never arrives) nor the other way round.
# It also leaves one token in the wake list, which a worker's pump waiting for work pops
# (``BLPOP``); the list never holds more than one.
# KEYS: order hash, schedule zset, update-id marker, wake list. ARGV: version (0 = assign the
# next one), due score, message prefix, message suffix, marker TTL ms, allow-equal flag.
# Returns {status, version}.
_ACCEPT = """
local seen = redis.call('GET', KEYS[3])
if seen then return {'duplicate', tonumber(seen)} end
local enq = tonumber(redis.call('HGET', KEYS[1], 'enqueued') or '0')
local dlv = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
local newest = math.max(enq, dlv)
local v = tonumber(ARGV[1])
if v == 0 then
  v = newest + 1
elseif v < newest or (v == newest and ARGV[6] ~= '1') or v <= dlv then
  return {'superseded', newest}
end
redis.call('HSET', KEYS[1], 'enqueued', v)
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3] .. v .. ARGV[4])
redis.call('SET', KEYS[3], v, 'PX', ARGV[5])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 0)
return {'enqueued', v}
"""

# Record a delivery; the delivered version only ever grows.
_DELIVERED = """
local dlv = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
if tonumber(ARGV[1]) > dlv then redis.call('HSET', KEYS[1], 'delivered', ARGV[1]) end
return 1
"""

# Release the lock only if this worker still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# A worker's step before sending, in one round trip: is the update parked already, is its
# version still the one to send (the rule of ``decide``, which a test keeps in step with this
# script), and if so take the order's send lock. Taking the lock in the same step as the
# check means the check needs no repeating under the lock, and a stale message never holds
# the lock, not even briefly (which would make the newest version wait).
# An outcome decided here is final, so the message's in-flight entry (``worker.schedule``)
# goes in the same step.
# KEYS: order hash, lock, dead letters' update-id index, in-flight set. ARGV: update id,
# version, token, lock TTL ms, in-flight member. Returns 'parked', 'duplicate', 'superseded',
# 'busy' or 'send'.
_CLAIM = """
local found
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then
  found = 'parked'
else
  local enq = tonumber(redis.call('HGET', KEYS[1], 'enqueued') or '0')
  local dlv = tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0')
  local v = tonumber(ARGV[2])
  if v == dlv then found = 'duplicate'
  elseif v < enq or v < dlv then found = 'superseded'
  elseif redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return 'send'
  else return 'busy' end
end
redis.call('ZREM', KEYS[4], ARGV[5])
return found
"""

# A worker's step after sending, once the outcome is recorded (a retry scheduled, a letter
# parked): record a delivered version (0: none), release the lock if this worker still holds
# it, and drop the message's in-flight entry. KEYS: order hash, lock, in-flight set.
# ARGV: delivered version, token, in-flight member.
_FINISH = """
local v = tonumber(ARGV[1])
if v > 0 and v > tonumber(redis.call('HGET', KEYS[1], 'delivered') or '0') then
  redis.call('HSET', KEYS[1], 'delivered', v)
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
"""


class Claim(StrEnum):
    """What :meth:`Ledger.claim` found."""

    SEND = "send"  # the lock is taken: send, then call finish
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    PARKED = "parked"  # the update is in the dead-letter queue already
    BUSY = "busy"  # another worker is sending for this order


class Decision(StrEnum):
    SEND = "send"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"


def decide(version: int, enqueued: int, delivered: int) -> Decision:
    """Whether a worker may send ``version`` given the ledger's newest enqueued and delivered.

    Equal to the delivered version means this very update was delivered already (a
    redelivered message); anything older than a version enqueued or delivered is stale.
    """
    if version == delivered:
        return Decision.DUPLICATE
    if version < enqueued or version < delivered:
        return Decision.SUPERSEDED
    return Decision.SEND


class Ledger:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._accept = client.register_script(_ACCEPT)
        self._delivered = client.register_script(_DELIVERED)
        self._release = client.register_script(_RELEASE)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)

    def versions(self, merchant: str, order_ref: str) -> tuple[int, int]:
        """(newest enqueued version, newest delivered version) of an order; 0 when none."""
        enqueued, delivered = self.client.hmget(
            keys.order(self.prefix, merchant, order_ref), ["enqueued", "delivered"]
        )
        return int(enqueued or 0), int(delivered or 0)

    def accept(
        self,
        merchant: str,
        order_ref: str,
        *,
        update_id: str,
        version: int | None,
        due: float,
        message_prefix: str,
        message_suffix: str,
        remember_ms: int,
        allow_equal: bool = False,
    ) -> tuple[str, int]:
        """Record a new update and schedule its message (see ``_ACCEPT``); (status, version)."""
        status, number = self._accept(
            keys=[
                keys.order(self.prefix, merchant, order_ref),
                keys.schedule(self.prefix),
                keys.update(self.prefix, update_id),
                keys.wake(self.prefix),
            ],
            args=[
                version or 0,
                repr(due),
                message_prefix,
                message_suffix,
                remember_ms,
                "1" if allow_equal else "0",
            ],
        )
        return _text(status), int(number)

    def record_delivered(self, merchant: str, order_ref: str, version: int) -> None:
        self._delivered(keys=[keys.order(self.prefix, merchant, order_ref)], args=[version])

    def acquire(self, merchant: str, order_ref: str, ttl_s: float) -> str | None:
        """Take the order's send lock; returns a token, or None when another worker holds it."""
        token = secrets.token_hex(8)
        taken = self.client.set(
            keys.lock(self.prefix, merchant, order_ref), token, nx=True, px=int(ttl_s * 1000)
        )
        return token if taken else None

    def release(self, merchant: str, order_ref: str, token: str) -> None:
        self._release(keys=[keys.lock(self.prefix, merchant, order_ref)], args=[token])

    def claim(
        self,
        merchant: str,
        order_ref: str,
        *,
        update_id: str,
        version: int,
        parked_index: str,
        ttl_s: float,
        member: str = "",
    ) -> tuple[Claim, str]:
        """Check an update against the ledger and take the order's lock when it is to be sent.

        ``parked_index``: the dead-letter store's hash of parked update ids. ``member``: the
        message's in-flight entry, dropped when the claim itself ends the attempt (parked,
        duplicate, superseded). Returns the claim and the lock's token (meaningful with
        ``Claim.SEND`` only).
        """
        token = secrets.token_hex(8)
        found = self._claim(
            keys=[
                keys.order(self.prefix, merchant, order_ref),
                keys.lock(self.prefix, merchant, order_ref),
                parked_index,
                keys.inflight(self.prefix),
            ],
            args=[update_id, version, token, int(ttl_s * 1000), member],
        )
        return Claim(_text(found)), token

    def finish(
        self,
        merchant: str,
        order_ref: str,
        token: str,
        *,
        delivered: int | None,
        member: str = "",
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Record ``delivered`` (if not None), release the lock taken by :meth:`claim`, and
        drop the message's in-flight entry ``member``.

        With ``pipe``, the step is only added to that pipeline, by its script's digest: the
        caller executes it, and on ``NoScriptError`` (Redis restarted and forgot its scripts)
        calls this again without ``pipe``. (A script registered with a pipeline would cost a
        SCRIPT EXISTS round trip on every execute, which is what the pipeline is to save.)
        """
        names = [
            keys.order(self.prefix, merchant, order_ref),
            keys.lock(self.prefix, merchant, order_ref),
            keys.inflight(self.prefix),
        ]
        args: list[str | int] = [delivered or 0, token, member]
        if pipe is None:
            self._finish(keys=names, args=args)
        else:
            pipe.evalsha(self._finish.sha, len(names), *names, *args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
