"""The Lua scripts cartsync runs in Redis, one file each, loaded by ``worker/scripts.py``."""
