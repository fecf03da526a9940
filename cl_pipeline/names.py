"""The one rule for names the pipeline turns into file names or SQL identifiers.

Table names, view names, artifact kinds and the DuckDB source's table and date
column must all be plain identifiers: an ASCII letter or underscore, then up to
62 letters, digits or underscores. Such a name is safe both as a file name and,
double-quoted, as an SQL identifier; nothing else is ever interpolated into SQL.
"""

import re

__all__ = ["IDENTIFIER", "SCHEDULER_ADDRESS", "check_scheduler_address", "is_identifier", "validate_identifier"]

#: A plain identifier (see the module docstring).
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def is_identifier(name: object) -> bool:
    """Whether ``name`` is a ``str`` matching :data:`IDENTIFIER`."""
    return isinstance(name, str) and IDENTIFIER.match(name) is not None


def validate_identifier(name: object, what: str = "table") -> str:
    """Return ``name`` if it is a plain identifier, else raise.

    Parameters
    ----------
    name : object
        The candidate name.
    what : str
        What the name is, for the error message (``"table"``, ``"view"``, ...).

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    ValueError
        Naming ``what`` and the bad value.
    """
    if not is_identifier(name):
        raise ValueError(f"invalid {what} name {name!r}: use letters, digits and underscores")
    return name  # type: ignore[return-value]


#: A Dask scheduler address: ``tcp://`` or ``tls://``, a host name or IP (IPv6 in brackets) and a port.
SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})$")


def check_scheduler_address(value: object, name: str = "dask_scheduler") -> str:
    """``value`` if it is a Dask scheduler address like ``tcp://10.0.0.5:8786``.

    Raises
    ------
    TypeError
        ``value`` is not a string.
    ValueError
        Naming ``name`` and the bad value.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string like 'tcp://HOST:PORT', got {type(value).__name__} {value!r}")
    match = SCHEDULER_ADDRESS.match(value)
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{name} must look like 'tcp://HOST:PORT' (or tls://), got {value!r}")
    return value
