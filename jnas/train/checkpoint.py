"""Orbax checkpoints of a training run, one per completed epoch.

A checkpoint holds the model state, the optimizer state and the run's PRNG key
(arrays, saved with orbax's standard handler) and a JSON record (epoch,
per-epoch history, anything else the caller adds, e.g. the config). Typed PRNG
keys, including those inside a model's ``nnx.Rngs`` state, are stored as their
raw key data and re-wrapped with the implementation of the restore target.
Checkpoints are written synchronously, so a run killed after ``save`` returns
can always resume from it; orbax writes each into a ``*.orbax-checkpoint-tmp``
folder renamed into place when complete, so a run killed (or out of disk)
during ``save`` resumes from the checkpoint before. A full disk is a one-line
``JnasError``.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jnas.errors import JnasError, MachineFault, first_line

_ARRAYS, _META = "arrays", "meta"


@dataclasses.dataclass
class Checkpoint:
    """One restored checkpoint (``epoch`` = number of completed epochs)."""

    epoch: int
    state: Any
    opt_state: Any
    key: jax.Array
    history: list
    meta: dict


def _is_key(a) -> bool:
    return hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    return jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)


def _abstract(tree):
    def one(a):
        a = jax.random.key_data(a) if _is_key(a) else a
        sharding = getattr(a, "sharding", None)
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

    return jax.tree.map(one, tree)


def _rewrap(restored, target):
    def one(r, t):
        return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r

    return jax.tree.map(one, restored, target)


def _manager(directory, keep: int | None = 2) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).resolve(), options=options)


def save(directory, epoch: int, *, state, opt_state, key, history: list, meta: dict | None = None, keep: int = 2):
    """Write the checkpoint of ``epoch`` completed epochs into ``directory``.

    ``state``/``opt_state`` are pytrees of arrays, ``key`` a PRNG key,
    ``history`` and ``meta`` JSON-serialisable. Only the newest ``keep``
    checkpoints are kept.
    """
    arrays = {"state": _to_saveable(state), "opt_state": _to_saveable(opt_state), "key": _to_saveable(key)}
    record = {"epoch": int(epoch), "history": list(history), "meta": dict(meta or {})}
    mngr = _manager(directory, keep)
    quiet = logging.getLogger("absl")  # orbax's threads log a full disk with tracebacks: the error below says it once
    quiet.addFilter(_not_disk_full)
    try:
        mngr.save(
            int(epoch),
            args=ocp.args.Composite(**{_ARRAYS: ocp.args.StandardSave(arrays), _META: ocp.args.JsonSave(record)}),
            force=True,
        )
        mngr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 — orbax reports a full disk in many shapes (OSError, RESOURCE_EXHAUSTED)
        if not _disk_full(e):
            raise
        # orbax's abandoned write tasks report the same full disk once more when collected, on exit
        logging.getLogger("asyncio").addFilter(_not_disk_full)
        raise MachineFault(f"checkpoint_dir: cannot write the checkpoint of epoch {epoch} in {directory} (No space "
                        "left on device); the checkpoints before it are kept: free some space and rerun the same "
                        "command to resume") from None
    finally:
        quiet.removeFilter(_not_disk_full)
        mngr.close()


_DISK_FULL = ("No space left on device", "[Errno 28]", "os_error_code='28'", "Disk quota exceeded")


def _not_disk_full(record: logging.LogRecord) -> bool:
    """Log filter: drop a record about a full disk (``save`` raises one line about it)."""
    return not any(w in record.getMessage() for w in _DISK_FULL)


def _disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or an exception it was raised from) says the disk or the quota is full."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(w in str(e) for w in _DISK_FULL):
            return True
        e = e.__cause__ or e.__context__
    return False


def latest_epoch(directory) -> int | None:
    """Epoch of the newest checkpoint in ``directory`` (``None`` if there is none)."""
    if not Path(directory).is_dir():
        return None
    mngr = _manager(directory, None)
    try:
        return mngr.latest_step()
    finally:
        mngr.close()


def _step(mngr, directory, epoch: int | None) -> int:
    """The saved step of ``epoch`` (default: the newest); a one-line error if there is none."""
    step = mngr.latest_step() if epoch is None else int(epoch)
    if step is None or step not in mngr.all_steps():
        raise JnasError(f"checkpoint_dir: no checkpoint{'' if epoch is None else f' for epoch {epoch}'} in {directory}")
    return step


def read_meta(directory, epoch: int | None = None) -> dict:
    """The ``meta`` record saved with the checkpoint of ``epoch`` (default: the newest), arrays left unread.

    Lets a caller check what run a checkpoint belongs to before restoring
    arrays of a possibly different shape.
    """
    return dict(_read_record(directory, epoch)["meta"])


def read_history(directory, epoch: int | None = None) -> list:
    """The per-epoch ``history`` saved with the checkpoint of ``epoch`` (default: the newest), arrays left unread."""
    return list(_read_record(directory, epoch)["history"])


def _read_record(directory, epoch: int | None) -> dict:
    mngr = _manager(directory, None)
    try:
        step = _step(mngr, directory, epoch)
        try:
            out = mngr.restore(step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()}))
            record = out[_META]
            if not isinstance(record, dict) or "meta" not in record or "history" not in record:
                raise ValueError("no meta/history record")
        except JnasError:
            raise
        except Exception as e:  # noqa: BLE001 — whatever orbax raises on a damaged folder, say it in one line
            raise JnasError(f"checkpoint_dir: checkpoint {step} in {directory} is unreadable ({first_line(e)}); "
                            "delete it or use a fresh directory") from None
    finally:
        mngr.close()
    return record


def _check_array_files(directory, step: int) -> None:
    """Refuse an arrays folder with its data files gone before tensorstore trips over it (noisily, in threads)."""
    arrays = Path(directory).resolve() / str(step) / _ARRAYS
    data = [p for p in arrays.rglob("*") if p.is_file() and p.parent.name == "d"]
    if not (arrays / "manifest.ocdbt").is_file() or not data:
        raise JnasError(f"checkpoint_dir: checkpoint {step} in {directory} is unreadable (its array files are "
                        "missing); delete it or use a fresh directory")


def restore(directory, *, state, opt_state, key, epoch: int | None = None) -> Checkpoint:
    """Read the checkpoint of ``epoch`` (default: the newest) from ``directory``.

    ``state``, ``opt_state`` and ``key`` are live pytrees of the same structure
    as the saved ones: they give shapes, dtypes, shardings and PRNG
    implementations of the restored arrays.
    """
    target = {"state": state, "opt_state": opt_state, "key": key}
    mngr = _manager(directory, None)
    try:
        step = _step(mngr, directory, epoch)
        _check_array_files(directory, step)
        try:
            out = mngr.restore(
                step,
                args=ocp.args.Composite(
                    **{_ARRAYS: ocp.args.StandardRestore(_abstract(target)), _META: ocp.args.JsonRestore()}
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if any(w in first for w in ("NOT_FOUND", "DATA_LOSS", "Error reading")):
                raise JnasError(f"checkpoint_dir: checkpoint {step} in {directory} is unreadable "
                                f"({first[:160]}...); delete it or use a fresh directory") from None
            raise JnasError(
                f"checkpoint_dir: checkpoint {step} in {directory} does not match this model ({first})"
            ) from e
        except Exception as e:  # noqa: BLE001 — missing or damaged array files
            raise JnasError(f"checkpoint_dir: checkpoint {step} in {directory} is unreadable ({first_line(e)}); "
                            "delete it or use a fresh directory") from None
    finally:
        mngr.close()
    arrays = _rewrap(out[_ARRAYS], target)
    record = out[_META]
    return Checkpoint(
        epoch=int(record["epoch"]),
        state=arrays["state"],
        opt_state=arrays["opt_state"],
        key=arrays["key"],
        history=list(record["history"]),
        meta=dict(record["meta"]),
    )


__all__ = ["Checkpoint", "latest_epoch", "read_history", "read_meta", "restore", "save"]
