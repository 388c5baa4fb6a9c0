"""Contract options: which parts of the payload a merchant may (or must) send.

From the payload reference's "Contract options" section and its "**" fields
(docs/SEQURA_API.md):

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

from cartsync.config.merchants import (
    CONTRACT_OPTIONS,
    GARAGE,
    IMPLIED,
    MULTISTORE,
    SERVICES,
    SHIPMENT_REF,
    TRAVEL,
    normalize,
)

# The names and their parsing live with the merchant accounts (config/merchants.py), so that
# reading the configuration loads no schema; the schemas import them from here.
__all__ = [
    "CONTRACT_OPTIONS",
    "GARAGE",
    "IMPLIED",
    "MULTISTORE",
    "SERVICES",
    "SHIPMENT_REF",
    "TRAVEL",
    "normalize",
]
