"""ANASOD-LS (Wan et al., Appendix B, Algorithm 3): local search on encodings, then on architectures.

Phase 1 climbs the encoding grid: it starts from an encoding drawn from the
uniform Dirichlet (rounded to the grid), evaluates one architecture drawn
from each neighbouring encoding (the adjacent grid vertices: one op slot of
one cell changes op, ``opdist.grid_neighbours``), moves to the best
neighbour while that beats the centre (best improvement; first improvement
with ``first_improvement=1``). At a local optimum of the encodings, phase 2
climbs architectures (``ls``'s one-edit neighbourhoods) from an architecture
drawn from the best encoding; at a local optimum there, the search restarts
at phase 1 with a fresh uniform encoding, until the budget is spent. Each
evaluation is one architecture, as in ``ls``; failed evaluations count per
``on_failure``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jnas.encodings import opdist
from jnas.strategies.anasod import OpDistStrategy, sampling_option
from jnas.strategies.base import Option, failure_option, select, stack1
from jnas.strategies.local_search import LSState, climb_ask, climb_init, climb_tell


class ANASODLSState(NamedTuple):
    on_encodings: jax.Array  # bool[]: phase 1 (True) or phase 2
    encodings: LSState  # the climber over count vectors int32[cells, k]
    archs: LSState  # the climber over architectures


class AnasodLS(OpDistStrategy):
    """Local search on ANASOD encodings, switching to architectures at an encoding optimum."""

    name = "anasod-ls"
    asynchronous = False  # ask moves the walk (the neighbour being tried)
    options = (
        Option("first_improvement", int, 0, "0 or 1", lambda v: v in (0, 1), "move on the first better neighbour"),
        sampling_option(),
        failure_option("-inf"),
    )

    def encoding_neighbours(self, counts):
        """``(int32[cells · k(k-1), cells, k], bool[...])``: grid vertices one unit move away in one cell."""
        rows, masks = [], []
        for j in range(self.cells):
            nbrs, mask = opdist.grid_neighbours(counts[j])
            rows.append(jnp.broadcast_to(counts, (nbrs.shape[0],) + counts.shape).at[:, j].set(nbrs))
            masks.append(mask)
        return jnp.concatenate(rows), jnp.concatenate(masks)

    def _init(self, key):
        start = jnp.full((self.cells, self.k), 0, jnp.int32).at[:, 0].set(self.n)  # a placeholder centre
        return ANASODLSState(jnp.array(True), climb_init(start, self.encoding_neighbours),
                             climb_init(self.space.template(), self.space.neighbours))

    def _ask(self, kit, key):
        st = kit.inner
        k_enc, k_eorder, k_arch, k_aorder, k_dec = jax.random.split(key, 5)
        fresh_enc = self.on_grid(self.draw(k_enc, self.uniform_concentration(), 1)[0])
        enc_prop, enc = climb_ask(st.encodings, k_eorder, fresh_enc, self.encoding_neighbours)
        # phase 2 starts from an architecture of the best encoding: the encoding climber's centre at its optimum
        fresh_arch = self.realise(k_arch, st.encodings.center)
        arch_prop, arch = climb_ask(st.archs, k_aorder, fresh_arch, self.space.neighbours)
        proposal = select(st.on_encodings, self.realise(k_dec, enc_prop), arch_prop)
        enc = select(st.on_encodings, enc, st.encodings)
        arch = select(st.on_encodings, st.archs, arch)
        return stack1(proposal), st._replace(encodings=enc, archs=arch)

    def _tell(self, kit, archs, values):
        st = kit.inner
        fi = bool(self.first_improvement)
        enc = climb_tell(st.encodings, values[0], self.encoding_neighbours, fi)
        arch = climb_tell(st.archs, values[0], self.space.neighbours, fi)
        # a climber that was scanning and stops has reached a local optimum: switch phase
        enc_optimum = st.encodings.scanning & ~enc.scanning
        arch_optimum = st.archs.scanning & ~arch.scanning
        on_enc = jnp.where(st.on_encodings, ~enc_optimum, arch_optimum)
        return ANASODLSState(on_enc, select(st.on_encodings, enc, st.encodings),
                             select(st.on_encodings, st.archs, arch))
