"""The HTTP service: ``shopsearch serve DIR`` (see :func:`create_app`)."""

from shopsearch.serve.app import create_app
from shopsearch.serve.settings import ServeSettings, SettingsError

__all__ = ["ServeSettings", "SettingsError", "create_app"]
