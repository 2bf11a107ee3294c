"""Where benchmark tables live: ``$JNAS_DATA_DIR``, else a per-user cache folder."""

from __future__ import annotations

from pathlib import Path

from jnas.errors import JnasError
from jnas.paths import data_dir


def data_file(name: str, fetch_hint: str) -> Path:
    """Path of data file ``name``; a clear ``JnasError`` if it is missing.

    ``fetch_hint`` is the command that obtains it, e.g. ``"jnas data fetch nb201"``.
    """
    path = data_dir() / name
    if not path.is_file():
        raise JnasError(
            f"benchmark data file {name!r} not found in {path.parent} "
            f"(set JNAS_DATA_DIR to the folder holding it, or run `{fetch_hint}`)"
        )
    return path
