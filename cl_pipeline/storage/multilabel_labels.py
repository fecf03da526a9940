"""Multi-label label columns of a snapshot: a set of class names per row.

A label column of an audit with ``columns.label_kind = "multilabel"`` holds, per row,
either a list (a Parquet ``list<string>`` or ``list<int>`` column) or a delimited string
(``"cat,dog"``, the delimiter being ``columns.label_delimiter``). The rules:

- a class name is a string, stripped of surrounding whitespace, or an integral number
  (``3`` and ``3.0`` are the class ``"3"``, as for single labels); a name may not be empty;
- the empty set is written as an empty list, an empty string or ``"[]"``; a null cell
  (``None``/NaN, also an empty CSV cell) is refused: a missing label is not "no class";
- a text cell may be wrapped in brackets (``"[cat, dog]"``); quotes around names are kept;
- a class named twice in one cell counts once; the order in the cell does not matter;
- a column of plain numbers or booleans is refused (single labels, not sets).

Errors are :class:`~cl_pipeline.config.ConfigError` naming the column, the row, the id
and the value.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cl_pipeline.config import ConfigError

__all__ = ["encode_label_sets", "format_label_sets", "parse_label_sets"]


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _where(column: str, row: int, ids: pd.Series) -> str:
    return f"label column {column!r}, row {row} (id {_plain(ids.iloc[row])!r})"


def _name(token: object, column: str, row: int, ids: pd.Series, cell: object) -> str:
    """The canonical class name of one element of a cell (see the module docstring)."""
    if isinstance(token, bool | np.bool_) or not isinstance(token, str | int | float | np.integer | np.floating):
        raise ConfigError(
            f"{_where(column, row, ids)} holds {_plain(cell)!r}: element {_plain(token)!r} is not a class name "
            "(a string or an integer)"
        )
    if isinstance(token, str):
        name = token.strip()
        if not name:
            raise ConfigError(f"{_where(column, row, ids)} holds {cell!r}: an empty class name")
        return name
    number = float(token)
    if not np.isfinite(number) or number != round(number):
        raise ConfigError(f"{_where(column, row, ids)} holds {_plain(cell)!r}: {_plain(token)!r} is not a class name")
    return str(int(number))


def _tokens(cell: str, delimiter: str, column: str, row: int, ids: pd.Series) -> list[str]:
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    if not text:
        return []
    tokens = [t.strip() for t in text.split(delimiter)]
    if any(not t for t in tokens):
        raise ConfigError(
            f"{_where(column, row, ids)} holds {cell!r}: an empty class name between delimiters "
            f"(columns.label_delimiter = {delimiter!r})"
        )
    return tokens


def parse_label_sets(values: pd.Series, column: str, delimiter: str, ids: pd.Series) -> list[list[str]]:
    """The set of class names of each row of a multi-label column.

    Parameters
    ----------
    values : Series, length n
        The label column (lists, arrays or strings).
    column : str
        Its name (for messages).
    delimiter : str
        Separator of class names in a text cell (non-empty).
    ids : Series, length n
        Example ids (for messages).

    Returns
    -------
    list of list of str, length n
        Each row's distinct class names, sorted.

    Raises
    ------
    ConfigError
        A column of numbers or booleans, a null cell, a cell that is neither a list nor a
        string, an empty or non-integral class name; the message names the row and id.
    """
    if not delimiter:
        raise ConfigError("columns.label_delimiter must not be empty")
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        raise ConfigError(
            f"label column {column!r} holds {values.dtype} values, not label sets: columns.label_kind = "
            f"'multilabel' needs a list column or delimited strings (e.g. 'cat{delimiter}dog')"
        )
    out: list[list[str]] = []
    for row, cell in enumerate(values.tolist()):
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            raise ConfigError(
                f"{_where(column, row, ids)} is null: write an empty list (or '' or '[]') for an example with no class"
            )
        if isinstance(cell, str):
            tokens: Sequence[object] = _tokens(cell, delimiter, column, row, ids)
        elif isinstance(cell, list | tuple | np.ndarray) and np.ndim(cell) == 1:
            tokens = list(cell)
        else:
            raise ConfigError(
                f"{_where(column, row, ids)} holds {_plain(cell)!r}: not a list of class names or a delimited string"
            )
        out.append(sorted({_name(t, column, row, ids, cell) for t in tokens}))
    return out


def _class_order(names: set[str]) -> list[str]:
    distinct = sorted(names)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return distinct


def encode_label_sets(
    sets: list[list[str]], classes: list[str] | None, column: str, ids: pd.Series, delimiter: str = ","
) -> tuple[np.ndarray, list[str]]:
    """The (n, K) 0/1 indicator matrix of parsed label sets, and the class order.

    Parameters
    ----------
    sets : list of list of str, length n
        From :func:`parse_label_sets`.
    classes : list of str, optional
        ``columns.classes``; default: the distinct names, sorted (numerically if all are integers).
    column : str
        The label column (for messages).
    ids : Series, length n
        Example ids (for messages).
    delimiter : str
        ``columns.label_delimiter`` (named when an unknown name contains another common delimiter).

    Returns
    -------
    indicator : ndarray of int8, shape (n, K)
    classes : list of str

    Raises
    ------
    ConfigError
        A name not in ``classes`` (naming the row, id and name).
    """
    order = list(classes) if classes is not None else _class_order({name for row in sets for name in row})
    position = {name: k for k, name in enumerate(order)}
    indicator = np.zeros((len(sets), len(order)), dtype=np.int8)
    for row, names in enumerate(sets):
        for name in names:
            k = position.get(name)
            if k is None:
                hint = ""
                if any(d in name for d in ",;|" if d != delimiter):
                    hint = f"; is columns.label_delimiter ({delimiter!r}) the delimiter of this column?"
                raise ConfigError(
                    f"{_where(column, row, ids)}: class {name!r} is not one of the classes {order[:20]}{hint}"
                )
            indicator[row, k] = 1
    return indicator, order


def format_label_sets(indicator: np.ndarray, classes: list[str], delimiter: str = ",") -> list[str]:
    """Each row of an (n, K) 0/1 matrix as text: its class names in class order, joined by ``delimiter``."""
    names = np.asarray(classes, dtype=object)
    return [delimiter.join(names[np.flatnonzero(row)]) for row in np.asarray(indicator)]
