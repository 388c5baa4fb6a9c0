"""``python -m sandbox``: the same as ``cartsync sandbox``."""

from sandbox.cli import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m sandbox")
