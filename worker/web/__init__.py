"""cartsync's HTTP ingestion service: seQura's own ``PUT`` and a native API, both enqueueing
through the producer with its guarantees (see ``worker/web/app.py``, ``cartsync serve``).

Nothing is built on import: :func:`cartsync.worker.web.app.create_app` is the factory.
"""
