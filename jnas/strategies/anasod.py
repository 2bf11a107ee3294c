"""ANASOD random search (Wan et al.): ``anasod-rs`` and ``anasod-biased-rs``.

ANASOD searches encodings instead of architectures: a point ``p̃`` on the
simplex of operation frequencies of a cell (``jnas.encodings.opdist``; ``k``
ops, ``N`` op slots per cell, one simplex per cell where a space counts
cells separately, as DARTS's normal and reduce cells). Each query evaluates
one architecture drawn from ``p̃`` and that architecture stands for its
encoding (the paper's approximation). How it is drawn (``sampling``):

* ``counts`` (default): ``p̃`` is rounded to the nearest grid point
  (``round_to_grid``, Bomze et al.) and those op counts are placed on the slots
  in uniformly random order;
* ``categorical``: every slot draws its op from ``p̃`` independently.

Wiring, where a space has any (DARTS edge inputs, NAS-Bench-Graph links,
NAS-Bench-101 adjacency), is a uniform sample of the space. The encoding a
strategy learns from is that of the architecture evaluated
(``opdist.distribution``), so with ``counts`` it is the rounded ``p̃``.

``anasod-rs`` draws every ``p̃`` from the uniform ``Dir(1, …, 1)``.
``anasod-biased-rs`` draws ``p̃_{t+1} ~ Dir(α)``, ``α_i = k β_t p̃*_i + 1``
(Eq. 3), with ``p̃*`` the encoding of the best architecture so far and
``β_t = β_max t / T`` rising linearly over the budget ``T`` (paper:
``β_max = 2``). Spaces without a fixed op set are refused.

``OpDistStrategy`` is the kit the ANASOD strategies share (``anasod_bo``,
``anasod_ls``): the space check, Dirichlet draws per cell and the
encoding ↔ architecture maps.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.encodings import opdist
from jnas.errors import JnasError
from jnas.strategies.base import Option, Strategy, batch_option, failure_option

SAMPLINGS = ("counts", "categorical")


def sampling_option() -> Option:
    """The ``sampling`` option: how an architecture is drawn from an encoding."""
    return Option("sampling", str, "counts", "counts or categorical", lambda v: v in SAMPLINGS,
                  "architecture from an encoding: counts = the rounded op counts on random slots; "
                  "categorical = every slot drawn from the encoding")


def beta_max_option(default: float = 2.0, help: str = "largest Dirichlet scale β") -> Option:
    return Option("beta_max", float, default, "a number > 0", lambda v: v > 0, help)


def op_set_spaces() -> tuple[str, ...]:
    """Registered spaces with a fixed op set (op slots): where the ANASOD strategies run."""
    from jnas.spaces import get_space, names

    return tuple(n for n in names() if get_space(n).supports("op_slot_layout"))


class OpDistStrategy(Strategy):
    """Base of the ANASOD strategies: encodings ``float[cells, k]``, architectures drawn from them."""

    def validate(self):
        if not self.space.supports("op_slot_layout"):
            raise JnasError(f"{self.name}: space {self.space.name!r} has no fixed op set (op slots); "
                            f"expected one of {', '.join(op_set_spaces())}")
        layout = self.space.op_slot_layout
        self.k, self.n, self.cells = len(layout.ops), layout.slots, layout.cells

    @property
    def dim(self) -> int:
        """Length of a flattened encoding (``cells · k``)."""
        return self.cells * self.k

    def uniform_concentration(self) -> jax.Array:
        return jnp.ones((self.cells, self.k), jnp.float32)

    def draw(self, key, alpha, n: int) -> jax.Array:
        """``n`` encodings ``float[n, cells, k]``, each cell from ``Dir(alpha[cell])`` (``alpha float[cells, k]``)."""
        return opdist.dirichlet(key, alpha, (n, self.cells))

    def on_grid(self, p) -> jax.Array:
        """``p float[..., cells, k]`` as the counts it stands for (``int32``; ``counts`` sampling)."""
        return opdist.round_to_grid(p, self.n)

    def realise(self, key, p):
        """One architecture drawn from the encoding ``p`` (``float[cells, k]``, or ``int32`` counts)."""
        counts = jnp.issubdtype(p.dtype, jnp.integer)
        if self.sampling == "counts":
            return opdist.decode(key, p if counts else self.on_grid(p), self.space)
        return opdist.decode(key, p.astype(jnp.float32) / self.n if counts else p, self.space)

    def realise_batch(self, key, p):
        return jax.vmap(self.realise)(jax.random.split(key, p.shape[0]), p)

    def encode(self, archs) -> jax.Array:
        """``float32[b, cells, k]``: the encodings of a batch of architectures (their op frequencies)."""
        d = jax.vmap(lambda a: opdist.distribution(a, self.space))(archs)
        return d.reshape(d.shape[0], self.cells, self.k)


class AnasodRS(OpDistStrategy):
    """ANASOD random search: encodings from the uniform Dirichlet."""

    name = "anasod-rs"
    options = (batch_option(1), sampling_option())

    def _ask(self, state, key):
        k_p, k_a = jax.random.split(key)
        p = self.draw(k_p, self.uniform_concentration(), self.batch_size)
        return self.realise_batch(k_a, p), state.inner


class Incumbent(NamedTuple):
    """The best encoding told so far and its value."""

    p: jax.Array  # float32[cells, k]
    value: jax.Array  # float[]


def init_incumbent(s: OpDistStrategy, dtype) -> Incumbent:
    return Incumbent(jnp.full((s.cells, s.k), 1.0 / s.k, jnp.float32), jnp.array(-jnp.inf, dtype))


def update_incumbent(s: OpDistStrategy, inc: Incumbent, archs, values) -> tuple[Incumbent, jax.Array]:
    """``(incumbent, improved)`` after a batch with (failure-filled) ``values``: improved = strictly better."""
    i = jnp.argmax(values)
    improved = values[i] > inc.value
    p = jnp.where(improved, s.encode(archs)[i], inc.p)
    return Incumbent(p, jnp.where(improved, values[i], inc.value).astype(inc.value.dtype)), improved


class AnasodBiasedRS(OpDistStrategy):
    """Biased ANASOD random search: a Dirichlet sharpening linearly around the best encoding so far."""

    name = "anasod-biased-rs"
    options = (
        batch_option(1),
        beta_max_option(2.0, "Dirichlet scale β at the end of the budget (β rises linearly from 0)"),
        sampling_option(),
        failure_option("-inf"),
    )

    def beta(self, told) -> jax.Array:
        """``β_t = β_max t / T`` after ``told`` queries of the budget ``T``."""
        return self.beta_max * jnp.asarray(told, jnp.float32) / self.budget

    def _init(self, key):
        return init_incumbent(self, jnp.result_type(float))

    def _ask(self, state, key):
        k_p, k_a = jax.random.split(key)
        alpha = opdist.biased_concentration(state.inner.p, self.beta(state.history.count))
        p = self.draw(k_p, alpha, self.batch_size)
        return self.realise_batch(k_a, p), state.inner

    def _tell(self, state, archs, values):
        return update_incumbent(self, state.inner, archs, values)[0]
