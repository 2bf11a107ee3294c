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
    env = os.environ.get("JNAS_DATA_DIR")
    return Path(env).expanduser() if env else user_cache()
