"""The strategy protocol: a pure ask/tell state machine with fixed-capacity state.

``state = s.init(key)``; ``archs, state = s.ask(state, key)``;
``state = s.tell(state, archs, values)``. ``archs`` carries a leading batch
axis of ``s.batch_size``; ``values`` is ``float[batch_size]`` and is
*maximised* (the runner negates lower-is-better metrics). A NaN value is a
failed evaluation: strategies treat it as the worst possible outcome and go
on. All three functions are jittable, so a run on a device-resident
benchmark is one ``lax.scan`` and seeds ``vmap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jnas.errors import JnasError
from jnas.spaces.base import Space


@dataclasses.dataclass(frozen=True)
class Option:
    """A strategy option settable with ``--set name=value``."""

    name: str
    type: type
    default: Any
    expected: str  # human description used in errors, e.g. "an integer >= 2"
    check: Callable[[Any], bool] = lambda v: True
    help: str = ""


def failed_to_worst(values: jax.Array) -> jax.Array:
    """Map failed evaluations (NaN) to -inf so they never win a comparison."""
    return jnp.where(jnp.isnan(values), -jnp.inf, values)


class Strategy:
    """Base class: validated options, the space and the query budget.

    Subclasses declare ``options`` and implement ``init``, ``ask``, ``tell``.
    """

    name: str = ""
    options: tuple[Option, ...] = ()
    batch_size: int = 1

    def __init__(self, space: Space, budget: int, **opts):
        if not isinstance(budget, int) or budget < 1:
            raise JnasError(f"budget: got {budget!r}, expected a positive integer")
        self.space = space
        self.budget = budget
        known = {o.name: o for o in self.options}
        for k in opts:
            if k not in known:
                valid = ", ".join(known) or "none"
                raise JnasError(f"--set {k}: unknown option for strategy {self.name!r}; valid options: {valid}")
        for o in self.options:
            v = opts.get(o.name, o.default)
            try:
                v = o.type(v)
            except (TypeError, ValueError):
                raise JnasError(f"--set {o.name}: got {v!r}, expected {o.expected}") from None
            if not o.check(v):
                raise JnasError(f"--set {o.name}: got {v!r}, expected {o.expected}")
            setattr(self, o.name, v)
        self.validate()

    def validate(self) -> None:
        """Cross-option checks (override); raise ``JnasError``."""

    def settings(self) -> dict:
        """The option values in force (JSON-ready)."""
        return {o.name: getattr(self, o.name) for o in self.options}

    def init(self, key: jax.Array):
        raise NotImplementedError

    def ask(self, state, key: jax.Array):
        raise NotImplementedError

    def tell(self, state, archs, values: jax.Array):
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"<strategy {self.name}({opts}) on {self.space.name}, budget {self.budget}>"

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other) -> bool:
        return self is other


def stack1(arch):
    """Add a leading batch axis of 1 to an architecture pytree."""
    return jax.tree.map(lambda x: x[None], arch)


def unstack1(archs):
    """Drop the leading batch axis of 1."""
    return jax.tree.map(lambda x: x[0], archs)


def select(pred, a, b):
    """Pytree ``where``: ``a`` if ``pred`` else ``b`` (scalar predicate)."""
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)
