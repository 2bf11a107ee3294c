"""User-facing errors: one line, naming the argument and what was expected.

``bad_argument`` builds the one-line message; the checkers beside it
(``check_int``, ``check_number``, ``check_positive``, ``check_bounds``)
are the one place argument types and ranges are tested, so every module
reports a bad value the same way. Each returns the value converted
(``int`` / ``float``) and raises ``JnasError`` otherwise; ``expected``
overrides the default wording where a message must say more.

Integers are Python or NumPy integers, never ``bool``; numbers are real
numbers (Python or NumPy), never ``bool``.
"""

from __future__ import annotations

import numbers


class JnasError(ValueError):
    """A bad argument or missing resource, reported without a JAX traceback."""


class Interrupted(JnasError):
    """Ctrl-C during long work; the message says what was kept and how to finish it."""


class MachineFault(JnasError):
    """A fault of the machine or the run folder, not of the architecture being evaluated (a full disk, a
    checkpoint folder of another run): a search stops on it instead of recording the network as failed, so
    a rerun after the fix resumes with nothing wrongly failed."""


def is_machine_fault(e: BaseException) -> bool:
    """Whether ``e`` is a ``MachineFault`` or an ``OSError`` of a full disk, an exceeded quota or a read-only
    filesystem (an evaluation that raises one stops the search)."""
    import errno

    if isinstance(e, MachineFault):
        return True
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def bad_argument(name: str, got, expected: str) -> JnasError:
    """Build the standard one-line error for argument ``name``."""
    return JnasError(f"{name}: got {got!r}, expected {expected}")


def unknown_name(kind: str, got: str, valid) -> JnasError:
    """Build the error for an unknown registry name, listing the valid ones."""
    return JnasError(f"unknown {kind} {got!r}; valid: {', '.join(sorted(valid))}")


# ----------------------------------------------------------------------------- argument checkers


def is_int(value) -> bool:
    """``value`` is a Python or NumPy integer (not a ``bool``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """``value`` is a real Python or NumPy number (not a ``bool``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range_words(kind: str, low, high) -> str:
    if low is None and high is None:
        return kind
    if high is None:
        return f"{kind} >= {low}"
    if low is None:
        return f"{kind} <= {high}"
    return f"{kind} in [{low}, {high}]"


def check_int(name: str, value, low: int | None = None, high: int | None = None, *,
              expected: str | None = None) -> int:
    """``int(value)`` when ``value`` is an integer in ``[low, high]`` (either bound optional).

    The default message says ``an integer``, ``an integer >= low`` or
    ``an integer in [low, high]``.
    """
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise bad_argument(name, value, expected or _range_words("an integer", low, high))
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 expected: str | None = None) -> float:
    """``float(value)`` when ``value`` is a number in ``[low, high]`` (either bound optional; NaN never is)."""
    ok = is_number(value) and value == value  # NaN compares unequal to itself
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise bad_argument(name, value, expected or _range_words("a number", low, high))
    return float(value)


def check_positive(name: str, value, *, expected: str = "a positive number") -> float:
    """``float(value)`` when ``value`` is a number > 0."""
    if not (is_number(value) and value > 0):
        raise bad_argument(name, value, expected)
    return float(value)


def check_bounds(name: str, value, *, expected: str = "a pair (low, high) with 0 < low < high") -> tuple[float, float]:
    """``(float(low), float(high))`` when ``value`` is a pair of numbers with ``0 < low < high``."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(is_number(t) for t in value)
        or not 0 < value[0] < value[1]
    ):
        raise bad_argument(name, value, expected)
    return float(value[0]), float(value[1])


def first_line(e: BaseException) -> str:
    """``"Type: first line of the message"`` (or just the type) of an exception: what a failure record keeps."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


__all__ = [
    "Interrupted", "JnasError", "MachineFault", "bad_argument", "check_bounds", "check_int", "check_number",
    "check_positive", "first_line", "is_int", "is_machine_fault", "is_number", "unknown_name",
]
