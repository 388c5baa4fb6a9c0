"""Personal data out of sight: the values under personal keys of a payload, masked.

seQura's payload carries the shopper's and the delivery's names, emails, phones, addresses,
national ids and dates of birth (docs/SEQURA_API.md). Viewers see every payload masked; an
operator edits a masked payload, and :func:`unmask` puts the original values back where the
mask was left untouched, so fixing a total never needs the shopper's data.
"""

from __future__ import annotations

import re
from typing import Any

#: What a masked value reads as.
MASK = "•••"

#: Key names (compared lower-cased, without ``_`` or ``-``) whose values are personal data
#: wherever they appear outside product subtrees.
PERSONAL_KEYS = frozenset(
    {
        "givennames",
        "surnames",
        "firstname",
        "lastname",
        "fullname",
        "email",
        "phone",
        "mobilephone",
        "workphone",
        "homephone",
        "telephone",
        "address",
        "addressline1",
        "addressline2",
        "street",
        "postalcode",
        "zipcode",
        "nin",
        "nincontrol",
        "nationalid",
        "vatnumber",
        "dateofbirth",
        "birthdate",
        "ipnumber",
        "useragent",
    }
)

#: Objects that describe a person (seQura's ``customer``, ``delivery_address``,
#: ``invoice_address``): every value inside is masked except :data:`PERSON_PUBLIC_KEYS`.
PERSON_KEYS = frozenset({"customer", "deliveryaddress", "invoiceaddress"})

#: What may show inside a person object: codes and references, not the person.
PERSON_PUBLIC_KEYS = frozenset({"countrycode", "languagecode", "ref", "loggedin", "rating"})

#: Subtrees that hold products and totals, never a person: an item's ``name`` is a product.
NOT_PERSONAL_PARENTS = frozenset({"items", "platform", "merchant", "merchantreference"})

_FOLD = re.compile(r"[_\-\s]")


def folded(key: str) -> str:
    """A key as the sets above hold it."""
    return _FOLD.sub("", key).lower()


def is_personal(key: str, parents: tuple[str, ...] = ()) -> bool:
    """Whether the value under ``key`` (reached through ``parents``) is personal data."""
    chain = [folded(p) for p in parents]
    if any(p in NOT_PERSONAL_PARENTS for p in chain):
        return False
    if any(p in PERSON_KEYS for p in chain):
        return folded(key) not in PERSON_PUBLIC_KEYS
    return folded(key) in PERSONAL_KEYS


def mask(payload: Any, parents: tuple[str, ...] = ()) -> Any:
    """A copy of ``payload`` with every personal value (:func:`is_personal`) replaced by
    :data:`MASK`; objects and lists are walked into, null and empty strings stay."""
    if isinstance(payload, dict):
        return {
            key: (
                MASK
                if is_personal(str(key), parents)
                and not isinstance(value, dict | list)
                and value not in (None, "")
                else mask(value, (*parents, str(key)))
            )
            for key, value in payload.items()
        }
    if isinstance(payload, list):
        return [mask(value, parents) for value in payload]
    return payload


def unmask(edited: Any, original: Any) -> tuple[Any, list[str]]:
    """``edited`` with each value still equal to :data:`MASK` replaced by ``original``'s value
    at the same path; also the paths where a mask has no original to come back from."""
    lost: list[str] = []

    def walk(new: Any, old: Any, path: str) -> Any:
        if isinstance(new, str) and new == MASK:
            if old is _MISSING:
                lost.append(path or "(root)")
                return new
            return old
        if isinstance(new, dict):
            base = old if isinstance(old, dict) else {}
            return {
                key: walk(value, base.get(key, _MISSING), f"{path}.{key}" if path else str(key))
                for key, value in new.items()
            }
        if isinstance(new, list):
            base_list = old if isinstance(old, list) else []
            return [
                walk(
                    value,
                    base_list[index] if index < len(base_list) else _MISSING,
                    f"{path}.{index}" if path else str(index),
                )
                for index, value in enumerate(new)
            ]
        return new

    return walk(edited, original, ""), lost


class _Missing:
    """No value at this path in the original payload."""


_MISSING: Any = _Missing()
