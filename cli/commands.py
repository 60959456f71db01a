"""Imports every command module in this package so each registers on the app.

Auto-discovery means adding a command group is adding one module; nobody has to
edit a shared registration list.
"""

from __future__ import annotations

import importlib
import pkgutil

import cli

_NOT_COMMANDS = {"main", "commands"}

for _module in pkgutil.iter_modules(cli.__path__):
    if _module.name not in _NOT_COMMANDS and not _module.name.startswith("_"):
        importlib.import_module(f"cli.{_module.name}")
