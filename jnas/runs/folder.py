"""A result folder that knows which command filled it: refuse, resume or finish.

A search writes ``run.json`` (the *spec*: every argument that changes the
result) into its folder before it starts, then one ``partial/`` file per
finished chunk of seeds, and finally ``summary.json`` + ``trajectory.npz``.
Rerunning the same command resumes from the finished chunks (or, when the
run is complete, just reads the result back); a different command into a
folder that holds a run is refused unless ``overwrite`` is given, which
removes jnas's own files only (never anything else in the folder).

Every file is written by ``write_atomic``: into a temporary file beside it,
then renamed into place, so a kill or a full disk leaves the previous file
(or none), never half of one, and a full disk is a one-line ``JnasError``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from jnas.errors import JnasError

RUN_FILE = "run.json"
PARTIAL = "partial"
RESULT_FILES = ("summary.json", "trajectory.npz")


def write_atomic(target: str | Path, write, then: str = "") -> Path:
    """Write ``target`` with ``write(binary_file)`` through a temporary file beside it and a rename.

    A kill leaves the old ``target`` (or none) and at most a hidden
    ``.NAME.PID.tmp``; any exception removes the temporary file. An
    ``OSError`` (a full disk, a read-only folder) becomes the one-line
    ``JnasError`` ``cannot write TARGET (WHY)`` followed by ``then``.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise JnasError(f"cannot write {target} ({e.strerror or type(e).__name__}){then}") from None
        raise
    return target


def prepare_folder(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and parents) and check that a file can be written there, before any work.

    Raises a one-line ``JnasError`` naming ``flag`` when the path runs below a
    file, is a file itself, or is not writable.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise JnasError(f"{flag}: {str(path)!r} is a file, expected a folder")
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".jnas-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except JnasError:
        raise
    except OSError as e:
        raise JnasError(f"{flag}: cannot write to {str(path)!r} ({e.strerror or type(e).__name__})") from None
    return path


def _flatten(spec: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in spec.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _describe_difference(old: dict, new: dict) -> str:
    if old.get("kind") != new.get("kind"):  # different kinds of run differ everywhere: name only that
        return f"kind: {old.get('kind')!r} there, {new.get('kind')!r} now"
    old, new = _flatten(old), _flatten(new)
    keys = [k for k in [*new, *(k for k in old if k not in new)] if old.get(k) != new.get(k)]
    k = keys[0]
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"{k}: {old.get(k)!r} there, {new.get(k)!r} now{more}"


class ResultFolder:
    """The folder of one run identified by ``spec`` (a JSON-ready dict).

    ``open()`` decides what to do with what the folder already holds and
    returns ``"new"``, ``"resume"`` or ``"done"``.
    """

    def __init__(self, path: str | Path, spec: dict, flag: str = "--out", extra_files: tuple[str, ...] = ()):
        self.path = Path(path)
        self.own = (RUN_FILE, PARTIAL, *RESULT_FILES, *extra_files)  # what clear() may remove
        self.spec = json.loads(json.dumps(spec))  # normalise (tuples -> lists) for comparison
        self.flag = flag

    # ----- opening ---------------------------------------------------------------
    def held_spec(self) -> dict | None:
        """The spec of the run the folder holds (``None`` if it holds none)."""
        f = self.path / RUN_FILE
        if not f.is_file():
            return None
        try:
            spec = json.loads(f.read_text())
        except (ValueError, UnicodeDecodeError):
            spec = None
        if not isinstance(spec, dict):
            raise JnasError(f"{self.flag}: {str(f)!r} is corrupt; rerun with --overwrite to start afresh")
        return spec

    def holds_results(self) -> bool:
        """Whether jnas files of some run are here (with or without a ``run.json``)."""
        return any((self.path / n).exists() for n in self.own)

    def open(self, overwrite: bool = False) -> str:
        """Check the folder against the spec; write ``run.json``; return ``new``/``resume``/``done``."""
        prepare_folder(self.path, self.flag)
        held = None if overwrite else self.held_spec()  # --overwrite replaces even a corrupt run.json
        if overwrite:
            self.clear()
        elif held is not None and held != self.spec:
            raise JnasError(
                f"{self.flag}: {str(self.path)!r} holds a different run ({_describe_difference(held, self.spec)}); "
                "use another folder or add --overwrite"
            )
        elif held is None and self.holds_results():
            raise JnasError(
                f"{self.flag}: {str(self.path)!r} holds results of an unknown run (no {RUN_FILE}); "
                "use another folder or add --overwrite"
            )
        if held is None or overwrite:
            self._write_atomic(self.path / RUN_FILE, (json.dumps(self.spec, indent=2) + "\n").encode())
            return "new"
        if all((self.path / n).is_file() for n in RESULT_FILES):
            return "done"
        return "resume"

    def clear(self) -> None:
        """Remove jnas's own files of a previous run (nothing else in the folder)."""
        for n in self.own:
            p = self.path / n
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            for tmp in self.path.glob(f".{n}.*.tmp"):  # left by a process killed while writing ``n``
                tmp.unlink(missing_ok=True)

    # ----- chunks ----------------------------------------------------------------
    def _chunk_file(self, c: int) -> Path:
        return self.path / PARTIAL / f"chunk_{c:06d}.npz"

    def save_chunk(self, c: int, arrays: dict[str, np.ndarray]) -> None:
        """Write the arrays of finished chunk ``c`` (atomically: an interrupt or a full disk leaves no half file)."""
        (self.path / PARTIAL).mkdir(exist_ok=True)
        write_atomic(self._chunk_file(c), lambda f: np.savez(f, **arrays),
                     f"; the seeds finished before it are kept in {self.path}: free some space and rerun the same "
                     "command to finish")

    def load_chunks(self, n_chunks: int, required: tuple[str, ...] = ()) -> dict[int, dict[str, np.ndarray]]:
        """The finished chunks ``{c: arrays}``; a damaged chunk file, or one without every ``required`` array,
        is dropped and recomputed."""
        out = {}
        for c in range(n_chunks):
            f = self._chunk_file(c)
            if not f.is_file():
                continue
            try:
                with np.load(f) as z:
                    arrays = {k: z[k] for k in z.files}
                if any(k not in arrays for k in required):
                    raise KeyError(required)
                out[c] = arrays
            except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
                f.unlink(missing_ok=True)
        return out

    def finish(self, save) -> None:
        """Write the final files with ``save(path)``, then drop the partial chunks."""
        save(self.path)
        shutil.rmtree(self.path / PARTIAL, ignore_errors=True)

    @staticmethod
    def _write_atomic(target: Path, data: bytes) -> None:
        write_atomic(target, lambda f: f.write(data), "; nothing has run yet")
