"""The order-update task: a use case that importing leaves inert, registered by the worker's app."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from cartsync.tasks.message import TASK_NAME
from cartsync.worker.runtime import RuntimeTask


def test_importing_the_task_module_has_no_side_effects():
    """Importing tasks.order_update loads no settings, builds no app and patches nothing."""
    check = textwrap.dedent(
        """
        import sys
        from kombu.transport import redis as kombu_redis
        import cartsync.tasks.order_update
        assert "cartsync.worker.celeryapp" not in sys.modules, "the Celery app was built"
        assert "cartsync.worker.runtime" not in sys.modules, "the composition root was loaded"
        assert not getattr(kombu_redis.Channel._connparams, "_cartsync_guarded", False)
        """
    )
    # Settings that cannot load: importing would fail if it read them.
    env = {**os.environ, "CARTSYNC_WORKER_POOL": "no-such-pool"}
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_workers_app_registers_the_task_with_its_runtime():
    """The worker's app holds the task under its published name, as a task that reaches the
    process's runtime, with late acks."""
    import cartsync.tasks.order_update  # noqa: F401  (what the app's include imports)
    from cartsync.worker.celeryapp import app

    task = app.tasks[TASK_NAME]
    assert isinstance(task, RuntimeTask)
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
