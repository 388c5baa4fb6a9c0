"""Configuration: settings from the environment, merchant accounts, logging set-up."""

from cartsync.config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
