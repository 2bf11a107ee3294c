"""The run journal: one JSON line per finished evaluation, flushed before the search asks again.

An entry is ``{"seed", "query", "arch", "fidelity", "status", "reason",
"metrics": {name: value or null}, "wall_seconds"}``: seed and query number
locate it in the run, ``arch`` is the architecture's string form. Reading
tolerates a torn last line (the process died while writing it): that
evaluation simply runs again. No pickle anywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from jnas.errors import JnasError

JOURNAL = "journal.jsonl"


def _clean(v):
    """JSON has no NaN: non-finite floats become ``null``."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Journal:
    """Append-only evaluation log at ``path`` (``journal.jsonl`` in a run folder)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[tuple[int, int], dict]:
        """Entries by ``(seed, query)``; a torn final line is dropped, a damaged middle line is an error."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_bytes().split(b"\n")
        entries = {}
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
                key = (int(e["seed"]), int(e["query"]))
            except (ValueError, KeyError, TypeError):
                if i == len(lines) - 1:  # the last line, cut short by a crash: evaluate it again
                    self._truncate_to(b"\n".join(lines[:i]) + (b"\n" if i else b""))
                    break
                raise JnasError(
                    f"{self.path}: line {i + 1} is damaged; rerun with --overwrite to start afresh"
                ) from None
            entries[key] = e
        return entries

    def _truncate_to(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def append(self, entry: dict) -> None:
        """Write one entry and flush it to disk before returning."""
        entry = {k: (_clean(v) if not isinstance(v, dict) else {m: _clean(x) for m, x in v.items()})
                 for k, v in entry.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
