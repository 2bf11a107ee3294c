"""The run journal: one JSON line per finished evaluation, flushed before the search asks again.

An entry is ``{"seed", "query", "arch", "fidelity", "status", "reason",
"metrics": {name: value or null}, "wall_seconds"}``: seed and query number
locate it in the run, ``arch`` is the architecture's string form. Reading
tolerates a torn last line (the process died while writing it): that
evaluation simply runs again. Appending a line that cannot be written
whole (a full disk) cuts the file back to where it was and raises a
one-line ``JnasError``: the journal never holds half a line it did not
report. No pickle anywhere.
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
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        entries = {}
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
                key = (int(e["seed"]), int(e["query"]))
            except (ValueError, KeyError, TypeError):
                if i == len(lines) - 1:  # the last line, cut short by a crash: evaluate it again
                    os.truncate(self.path, len(data) - len(line))  # in place: a kill now loses nothing else
                    break
                raise JnasError(
                    f"{self.path}: line {i + 1} is damaged; rerun with --overwrite to start afresh"
                ) from None
            entries[key] = e
        else:
            if data and not data.endswith(b"\n"):  # a whole entry whose newline was never written
                self._write(b"\n")
        return entries

    def append(self, entry: dict) -> None:
        """Write one entry and flush it to disk before returning."""
        entry = {k: (_clean(v) if not isinstance(v, dict) else {m: _clean(x) for m, x in v.items()})
                 for k, v in entry.items()}
        self._write((json.dumps(entry, allow_nan=False) + "\n").encode())

    def _write(self, data: bytes) -> None:
        """Append ``data`` whole and fsync it; on an ``OSError`` cut the file back and raise a ``JnasError``."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as e:
                try:
                    os.ftruncate(fd, start)  # no half line: what was there before stays exactly as it was
                except OSError:
                    pass
                raise JnasError(f"cannot write {self.path} ({e.strerror or type(e).__name__}); every evaluation "
                                "journaled before is kept: free some space and rerun the same command to "
                                "resume") from None
        finally:
            os.close(fd)
