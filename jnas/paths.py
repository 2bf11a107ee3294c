"""Where jnas keeps files on this machine: the benchmark-table folder and the user cache."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/jnas``, else ``~/.cache/jnas`` (not necessarily existing yet)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "jnas"


def data_dir() -> Path:
    """The folder holding benchmark tables and offline datasets: ``$JNAS_DATA_DIR``, else :func:`user_cache`."""
    return data_dir_and_origin()[0]


def data_dir_and_origin() -> tuple[Path, str]:
    """:func:`data_dir` and, in words, how it was chosen (for ``jnas data status``)."""
    env = os.environ.get("JNAS_DATA_DIR")
    if env:
        return Path(env).expanduser(), "set by $JNAS_DATA_DIR"
    why = "is empty" if env == "" else "is not set"
    return user_cache(), f"the user cache; $JNAS_DATA_DIR {why}"
