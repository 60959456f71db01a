"""Imports every command module so each registers its commands on the app."""

from cli import version as _version  # noqa: F401
