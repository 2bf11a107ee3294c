"""User-facing errors: one line, naming the argument and what was expected."""


class JnasError(ValueError):
    """A bad argument or missing resource, reported without a JAX traceback."""


class Interrupted(JnasError):
    """Ctrl-C during long work; the message says what was kept and how to finish it."""


def bad_argument(name: str, got, expected: str) -> JnasError:
    """Build the standard one-line error for argument ``name``."""
    return JnasError(f"{name}: got {got!r}, expected {expected}")


def unknown_name(kind: str, got: str, valid) -> JnasError:
    """Build the error for an unknown registry name, listing the valid ones."""
    return JnasError(f"unknown {kind} {got!r}; valid: {', '.join(sorted(valid))}")
