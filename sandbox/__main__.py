"""``python -m cartsync.sandbox``: the same as ``cartsync sandbox``."""

from cartsync.sandbox.cli import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m cartsync.sandbox")
