"""Letters grouped by order: kept in worker/deadletters/grouping.py, which the CLI shares."""

from cartsync.worker.deadletters.grouping import (
    OrderGroup,
    OrderKey,
    group_by_order,
    newest_of,
    newness,
    order_key,
)

__all__ = ["OrderGroup", "OrderKey", "group_by_order", "newest_of", "newness", "order_key"]
