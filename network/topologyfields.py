"""Reading ``network.yaml`` strictly: typed fields, Fabric's name rules, named errors.

:class:`FieldReader` pulls the fields of one mapping of the file, checking
each against the rule Fabric applies to it (config-group keys, DNS names,
``host:port`` addresses, positive integers, ...), and raises
:class:`TopologyError` naming the offending field by its full path
(``organizations[2].peers[0].address``); :meth:`FieldReader.done` rejects
keys nobody asked for, since in a deployment file they are almost always
typos.

It lives apart from :mod:`network.topology` because it is the file format's
reading rules, not the network they describe; the spec classes there build
themselves with it. :class:`TopologyError` and :func:`split_address` are
re-exported from :mod:`network.topology`, their documented home.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from crypto.errors import AccessLedgerError
from crypto.onboarding import DEPARTMENT_NAME_RE

#: Fabric's longest channel name (configtx.ValidateChannelID), also applied to config keys.
MAX_NAME_LENGTH = 249
# Fabric's config group keys (configtx validateConfigID).
_CONFIG_KEY_RE = re.compile(r"^[a-zA-Z0-9.\-_]+$")
_HOST_RE = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class TopologyError(AccessLedgerError):
    """``network.yaml`` is missing, malformed or inconsistent; the message names the field."""

    code = "invalid_topology"


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into host and port; ``ValueError`` if malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            raise ValueError(f"{address!r} has a malformed IPv6 host")
    elif not _HOST_RE.match(host):
        raise ValueError(f"{address!r} has a malformed host")
    return host, port


class FieldReader:
    """Pulls typed fields out of one mapping, naming the field's full path in every error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise TopologyError(f"{where or 'network.yaml'}: expected a mapping, got {_kind(data)}")
        self._data = data
        self._where = where
        self._used: set[str] = set()

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def raw(self, key: str, default: Any = ...) -> Any:
        self._used.add(key)
        if key not in self._data or self._data[key] is None:
            if default is ...:
                raise TopologyError(f"{self._path(key)}: required field is missing")
            return default
        return self._data[key]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw(key, ... if default is None else default)
        if not isinstance(value, str):
            raise TopologyError(f"{self._path(key)}: expected a string, got {_kind(value)}")
        if default is None and not value.strip():
            raise TopologyError(f"{self._path(key)}: must not be empty")
        return value

    def matching(
        self, key: str, pattern: re.Pattern[str], what: str, default: str | None = None
    ) -> str:
        value = self.text(key, default)
        if value == default:
            return value
        if not pattern.match(value):
            raise TopologyError(f"{self._path(key)}: {value!r} is not {what}")
        return value

    def config_key(self, key: str) -> str:
        value = self.matching(key, _CONFIG_KEY_RE, "a valid name (letters, digits, '.', '-', '_')")
        if len(value) > MAX_NAME_LENGTH:
            raise TopologyError(f"{self._path(key)}: longer than {MAX_NAME_LENGTH} characters")
        return value

    def department_name(self, key: str) -> str:
        """A department's organisation name or MSP ID: what every place it travels accepts.

        That is :data:`crypto.onboarding.DEPARTMENT_NAME_RE` (letters, then letters
        and digits): Fabric policy principals refuse ``_``, the contract's
        department names refuse ``.`` and ``-``, and ``accessledger department
        add`` applies the same rule, so a genesis department can be updated later.
        """
        return self.matching(
            key, DEPARTMENT_NAME_RE, "a department name (a letter, then letters and digits)"
        )

    def name(self, key: str) -> str:
        return self.matching(key, re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"), "an identity name")

    def domain(self, key: str, default: str | None = None) -> str:
        return self.matching(key, _HOST_RE, "a DNS domain", default)

    def path(self, key: str, default: str | None = None) -> str:
        value = self.text(key, default)
        if "\x00" in value:
            raise TopologyError(f"{self._path(key)}: contains a NUL byte")
        return value

    def address(self, key: str) -> str:
        value = self.text(key)
        try:
            split_address(value)
        except ValueError as exc:
            raise TopologyError(f"{self._path(key)}: {exc}") from None
        return value

    def positive_int(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TopologyError(f"{self._path(key)}: expected an integer, got {_kind(value)}")
        if value <= 0:
            raise TopologyError(f"{self._path(key)}: must be positive, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise TopologyError(f"{self._path(key)}: expected true or false, got {_kind(value)}")
        return value

    def sequence(self, key: str, default: Sequence[Any] | None = None) -> Sequence[Any]:
        value = self.raw(key, ... if default is None else default)
        if not isinstance(value, list | tuple):
            raise TopologyError(f"{self._path(key)}: expected a list, got {_kind(value)}")
        return value

    def done(self) -> None:
        """Reject keys nobody asked for: in a deployment file they are almost always typos."""
        unknown = sorted(str(k) for k in self._data if k not in self._used)
        if unknown:
            raise TopologyError(f"{self._path(unknown[0])}: unknown field")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__
