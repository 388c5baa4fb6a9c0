"""The producing side of a benchmark run, as a process of its own (so its CPU time is its own).

    python -m bench.load VARIANT COUNT [--per-order K] [--seed S] [--prefix P] [--two-item]

``VARIANT`` is ``naive`` (``put_order.delay``) or ``cartsync`` (``Producer.enqueue``:
validation, ledger, schedule). Payloads are built before the clock starts. Prints one JSON
line: ``started`` and ``finished`` (epoch seconds), ``cpu_s`` (this process, producing only)
and, for cartsync, the latency of every enqueue call in milliseconds (``latencies_ms``).

With ``--per-order K`` each order gets K updates back to back (a burst per order), every
order's burst after the previous one's: COUNT is then the number of orders.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

from bench.harness import MERCHANT
from bench.letters import payload
from cartsync.tasks.builders import Item, fully_shipped


def two_item(order_ref: str, quantity: int) -> dict[str, Any]:
    """A product and its handling, the smallest realistic update."""
    handling = {"type": "handling", "reference": "seur24", "name": "SEUR 24h",
                "total_with_tax": 242}  # fmt: skip
    return fully_shipped(
        merchant=MERCHANT,
        order_ref=order_ref,
        items=[Item("12-123-1234", "Funda de piel", 3030, quantity), handling],
    )


def bodies(
    count: int, *, per_order: int, seed: int, prefix: str, small: bool
) -> list[tuple[str, dict[str, Any]]]:
    """(order_ref, body) in enqueue order: each order's ``per_order`` updates back to back."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        ref = f"{prefix}-{n:06d}"
        for k in range(per_order):
            body = two_item(ref, per_order - k) if small else payload(rng, MERCHANT, ref)
            if not small:
                # Each update of an order differs (the quantity of the first line goes down,
                # as returns would, so that seQura never sees an upsell), so that "the final
                # state is the last enqueued one" can be checked.
                line = body["order"]["shipped_cart"]["items"][0]
                line["quantity"] = per_order - k
                line["total_with_tax"] = line["price_with_tax"] * (per_order - k)
                cart = body["order"]["shipped_cart"]
                cart["order_total_with_tax"] = sum(i["total_with_tax"] for i in cart["items"])
            out.append((ref, body))
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("variant", choices=["naive", "cartsync"])
    parser.add_argument("count", type=int)
    parser.add_argument("--per-order", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix", default="B")
    parser.add_argument("--two-item", action="store_true")
    args = parser.parse_args(argv)
    work = bodies(
        args.count, per_order=args.per_order, seed=args.seed, prefix=args.prefix,
        small=args.two_item,
    )  # fmt: skip
    latencies: list[float] = []
    if args.variant == "naive":
        from bench.naive import put_order

        put_order.app.connection_for_write().ensure_connection()
        cpu0, started = time.process_time(), time.time()
        for ref, body in work:
            put_order.delay(MERCHANT, ref, body)
    else:
        from cartsync.config.logging import configure_logging
        from cartsync.config.settings import load_settings
        from cartsync.tasks.producer import Producer

        settings = load_settings()
        configure_logging(settings)
        producer = Producer(settings)
        _ = producer.merchants  # built before the clock starts
        producer.client.ping()
        cpu0, started = time.process_time(), time.time()
        clock = time.perf_counter
        for _ref, body in work:
            t0 = clock()
            producer.enqueue(body)
            latencies.append((clock() - t0) * 1000.0)
    result = {
        "started": started,
        "finished": time.time(),
        "cpu_s": time.process_time() - cpu0,
        "count": len(work),
        "latencies_ms": latencies,
    }
    sys.stderr.flush()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
