"""Test configuration: benchmark tables come from ``$JNAS_DATA_DIR``.

When it is unset, the ``shared/data`` folder beside the repository is used.
Tests that need a table fail (never skip) when it is missing.
"""

import os
from pathlib import Path

_default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
os.environ.setdefault("JNAS_DATA_DIR", str(_default))
os.environ.setdefault("JNAS_NO_COMPILE_CACHE", "1")  # the CLI must not write to the user cache from tests

# Property tests draw the same examples on every run, so CI results are reproducible.
from hypothesis import settings  # noqa: E402

settings.register_profile("jnas", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("jnas")
