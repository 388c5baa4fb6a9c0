"""Synthetic dead letters of realistic size and variety, for the dead-letter benchmark.

Every payload is a valid Order Update body of about 2 KB: a shipped cart of a few products
with Spanish names and a handling line, addresses, a customer. Names, streets and prices are
drawn at random from small vocabularies, so the JSON compresses about as well as real cart
JSON does (repeated keys, varied values), not as well as a repeated template would.
"""

from __future__ import annotations

import random
from typing import Any

from cartsync.tasks.builders import Item, fully_shipped
from cartsync.worker.deadletters import DeadLetter, Reason

GIVEN = ("María José", "Lucía", "Jordi", "Ana Belén", "Pau", "Carmen", "Iñaki", "Núria", "Javier")
SURNAMES = ("Barroso Rajoy", "García López", "Puig i Ferrer", "Etxeberria", "Martín Sanz")
STREETS = ("C/ Aragó", "Avda. Diagonal", "C/ Mayor", "Passeig de Gràcia", "C/ Alcalá")
CITIES = (("08013", "Barcelona"), ("28014", "Madrid"), ("46002", "València"), ("48001", "Bilbao"))
PRODUCTS = (
    "Camisa de lino manga larga",
    "Chaqueta vaquera",
    "Zapatillas de running",
    "Bolso de piel",
    "Pantalón chino",
    "Vestido estampado",
    "Gafas de sol polarizadas",
    "Reloj analógico",
    "Mochila impermeable",
    "Jersey de punto",
    "Cinturón trenzado",
    "Sudadera con capucha",
)
CATEGORIES = ("ropa-hombre", "ropa-mujer", "calzado", "accesorios", "complementos")
ERRORS = {
    Reason.CONFLICT: (
        409,
        "Invalid data: In shipped_cart, items' total_with_tax add up to {a} "
        "but order_total_with_tax is {b}. The diff is {d}.",
    ),
    Reason.REJECTED: (404, "Order not found"),
    Reason.UNAUTHORIZED: (401, "Access denied"),
    Reason.EXHAUSTED: (503, "Service Unavailable"),
    Reason.INVALID: (None, "order.shipped_cart.items.0.quantity: Not a valid integer."),
}
#: How often each reason occurs among synthetic letters (409s dominate in real life).
REASON_WEIGHTS = (
    (Reason.CONFLICT, 60),
    (Reason.REJECTED, 15),
    (Reason.EXHAUSTED, 15),
    (Reason.UNAUTHORIZED, 7),
    (Reason.INVALID, 3),
)


def payload(rng: random.Random, merchant: str, order_ref: str) -> dict[str, Any]:
    """A valid Order Update body of about 2 KB."""
    items = [
        Item(
            f"{rng.randrange(10, 99)}-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
            f"{rng.choice(PRODUCTS)} - talla {rng.choice('SMLX')}",
            rng.randrange(500, 15000),
            rng.randrange(1, 4),
        )
        for _ in range(rng.randrange(4, 7))
    ]
    handling = {
        "type": "handling",
        "reference": "seur24",
        "name": "SEUR entrega en 24 horas",
        "total_with_tax": rng.choice((0, 242, 395, 490)),
    }
    body = fully_shipped(merchant=merchant, order_ref=order_ref, items=[*items, handling])
    for line in body["order"]["shipped_cart"]["items"][:-1]:
        line["category"] = rng.choice(CATEGORIES)
        line["product_id"] = str(rng.randrange(1, 100000))
    given, surnames = rng.choice(GIVEN), rng.choice(SURNAMES)
    postal, city = rng.choice(CITIES)
    address = {
        "given_names": given,
        "surnames": surnames,
        "company": "",
        "address_line_1": f"{rng.choice(STREETS)} {rng.randrange(1, 400)}",
        "address_line_2": f"{rng.randrange(1, 9)}º {rng.choice('ABCD')}",
        "postal_code": postal,
        "city": city,
        "country_code": "ES",
        "phone": f"9{rng.randrange(10000000, 99999999)}",
    }
    order = body["order"]
    order["delivery_address"] = address
    order["invoice_address"] = dict(address)
    order["delivery_method"] = {
        "name": "SEUR24",
        "days": "24h",
        "provider": "SEUR",
        "home_delivery": True,
    }
    order["customer"] = {
        "given_names": given,
        "surnames": surnames,
        "email": f"cliente{rng.randrange(10**6, 10**7)}@example.com",
        "ref": rng.randrange(1, 10**6),
        "date_of_birth": f"19{rng.randrange(50, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}",
        "nin": f"{rng.randrange(10**7, 10**8)}{rng.choice('TRWAGMYFPDXBNJZSQVHLCKE')}",
    }
    order["platform"] = {
        "name": "WooCommerce",
        "version": "8.9.1",
        "uname": "Linux web-3 6.1.0-18-amd64 #1 SMP x86_64",
    }
    return body


def letter(
    rng: random.Random, index: int, *, total: int, now: float, spread_s: float, merchants: int
) -> DeadLetter:
    """The ``index``-th of ``total`` letters, spread evenly over ``spread_s`` before ``now``."""
    merchant = f"merchant{rng.randrange(merchants):03d}"
    order_ref = f"ORD-{index:08d}"
    reason = rng.choices([r for r, _ in REASON_WEIGHTS], [w for _, w in REASON_WEIGHTS])[0]
    status, template = ERRORS[reason]
    amount = rng.randrange(1000, 90000)
    diff = rng.randrange(1, 100)
    dead_at = now - spread_s + spread_s * index / total
    return DeadLetter(
        update_id=f"{rng.getrandbits(128):032x}",
        merchant=merchant,
        order_ref=order_ref,
        version=rng.randrange(1, 5),
        reason=reason.value,
        status=status,
        errors=[template.format(a=amount, b=amount + diff, d=diff)],
        attempts=[
            {
                "at": dead_at - 1.5,
                "status": status,
                "exception": None,
                "errors": [],
                "latency_ms": 85.0,
            }
        ],
        enqueued_at=dead_at - 2.0,
        payload=payload(rng, merchant, order_ref),
        dead_at=dead_at,
    )
