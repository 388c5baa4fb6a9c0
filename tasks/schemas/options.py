"""Contract options: which parts of the payload a merchant may (or must) send.

From the references' "Contract options" section and their "**" fields:

- ``multistore``: ``merchant.store_ref`` is mandatory, and not permitted for others.
- ``shipment_ref``: ``shipped_cart.items.*.shipment_ref`` is mandatory, and not permitted
  for others (every shipped item type, travel items included).
- ``garage``: ``customer.vehicle`` (whose ``plaque`` "garages have to inform") is mandatory
  when ``customer`` is sent, and not permitted for others, like the references' other "**"
  fields. "They are also multistore": ``garage`` implies ``multistore``.
- ``services``: ``service`` items are allowed.
- ``travel``: ``flight`` and ``lodging`` items are allowed.

The contract options text also says multistore "requires" ``operator_ref`` and
``nin_control``; both are marked optional in the field tables (and belong to the optional
``trackings`` and ``customer``), so cartsync does not require them.
"""

from __future__ import annotations

from collections.abc import Collection

from cartsync.worker.errors import ConfigurationError

MULTISTORE = "multistore"
SHIPMENT_REF = "shipment_ref"
GARAGE = "garage"
SERVICES = "services"
TRAVEL = "travel"

#: Every contract option cartsync knows.
CONTRACT_OPTIONS = frozenset({MULTISTORE, SHIPMENT_REF, GARAGE, SERVICES, TRAVEL})

#: Options that bring others with them.
IMPLIED = {GARAGE: frozenset({MULTISTORE})}


def normalize(options: Collection[str]) -> frozenset[str]:
    """The options in effect: names checked, implied options added.

    Raises ConfigurationError naming the first unknown option.
    """
    given = frozenset(options)
    unknown = sorted(given - CONTRACT_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown contract option {unknown[0]!r} (known: {', '.join(sorted(CONTRACT_OPTIONS))})"
        )
    effective = set(given)
    for option in given:
        effective |= IMPLIED.get(option, frozenset())
    return frozenset(effective)
