"""Property tests of the Space protocol, run against every registered space.

Each hypothesis example draws one integer seed and checks a small vmapped
batch, so that compiled functions are reused across examples.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jnas.errors import JnasError
from jnas.spaces import get_space, names

#: spaces that must exist (others are skipped until their module lands)
REQUIRED = {"nb201", "nb101", "darts", "convnet", "convnet-small"}
BATCH = 8
#: enumerable spaces at most this large get a brute-force neighbourhood check
BRUTE_FORCE_MAX = 20_000
SEEDS = st.integers(0, 2**31 - 1)
FEW = settings(max_examples=12, deadline=None)
VERY_FEW = settings(max_examples=4, deadline=None)


def load(name):
    """The space ``name``; skips when its module has not been written yet."""
    try:
        return get_space(name)
    except ModuleNotFoundError as e:
        if name in REQUIRED or not (e.name or "").startswith("jnas.spaces."):
            raise
        pytest.skip(f"space {name!r}: module {e.name} does not exist yet")


def test_required_spaces_registered():
    assert REQUIRED <= set(names())


# ----- edit distances (one edit = one neighbour step) -----------------------------------

def _dist_nb201(a, b):
    return np.sum(a != b, axis=-1)


def _dist_nb101(a, b):
    # Raw cells: one flipped adjacency bit or one changed op is one edit.
    return np.sum(a[0] != b[0], axis=(-1, -2)) + np.sum(a[1] != b[1], axis=-1)


def _dist_darts(a, b):
    # Per node, the two edges are an unordered pair: count changed fields under the best matching.
    a = a.reshape(*a.shape[:-3], 2, 4, 2, 2).astype(int)
    b = b.reshape(*b.shape[:-3], 2, 4, 2, 2).astype(int)
    straight = np.sum(a != b, axis=(-1, -2))
    crossed = np.sum(a != b[..., ::-1, :], axis=(-1, -2))
    return np.sum(np.minimum(straight, crossed), axis=(-1, -2))


def _dist_convnet(a, b):
    # Layers are compared position by position; each added/removed layer is one edit.
    a, b = np.broadcast_arrays(a.astype(int), b.astype(int))
    da, db = a[..., 0], b[..., 0]
    common = np.arange(a.shape[-1] - 1) // 2 < np.minimum(da, db)[..., None]
    changed = np.sum((a[..., 1:] != b[..., 1:]) & common, axis=-1)
    return changed + np.abs(da - db)


DISTANCES = {"nb201": _dist_nb201, "nb101": _dist_nb101, "darts": _dist_darts, "convnet": _dist_convnet}


def distance_fn(space):
    """``f(a, b) -> int array`` over numpy pytrees, or ``None`` when the space has no edit metric.

    Spaces that canonicalise after an edit (e.g. nbgraph) have none here:
    their neighbours are only checked for validity and difference.
    """
    fam = space.name.split("-")[0]
    if fam in DISTANCES:
        return DISTANCES[fam]
    if hasattr(space, "edit_distance"):
        return lambda a, b: np.asarray(jax.vmap(space.edit_distance)(a, b))
    return None


# ----- helpers ------------------------------------------------------------------

def np_tree(x):
    return jax.tree.map(np.asarray, x)


def take(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def tree_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.shape(x) == np.shape(y) and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def rows_differ(a, b):
    """bool[n]: row ``i`` of batched pytree ``a`` differs from (broadcast) ``b``."""
    out = None
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x = np.asarray(x)
        d = (x != np.asarray(y)).reshape(x.shape[0], -1).any(axis=1)
        out = d if out is None else out | d
    return out


def expand(tree, n):
    """Broadcast a single architecture to ``n`` rows (to compare with neighbour rows)."""
    return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), tree)


@functools.cache
def batched(space):
    """One jitted program computing every batched property input for a seed.

    Everything is vmapped over ``BATCH`` samples and compiled once per space
    (compilation, not running, dominates the cost on CPU).
    """
    valid = jax.vmap(space.is_valid)

    def run(seed):
        # Each primitive appears once in the program (batches are concatenated, not re-traced).
        k_sample, k_mut, k_cross = jax.random.split(jax.random.key(seed), 3)
        sample_keys = jax.random.split(k_sample, 2 * BATCH)
        both = jax.vmap(space.sample)(sample_keys)
        archs = jax.tree.map(lambda x: x[:BATCH], both)
        others = jax.tree.map(lambda x: x[BATCH:], both)
        mut_keys = jax.random.split(k_mut, BATCH)
        mutants = jax.vmap(space.mutate)(mut_keys, archs)
        nbrs, mask = jax.vmap(space.neighbours)(archs)
        # parents (a, b) for the first half of the children, (a, a) for the second
        left = jax.tree.map(lambda x: jnp.concatenate([x, x]), archs)
        right = jax.tree.map(lambda x, y: jnp.concatenate([x, y]), others, archs)
        kids = jax.vmap(space.crossover)(jax.random.split(k_cross, 2 * BATCH), left, right)
        checked = jax.tree.map(lambda *x: jnp.concatenate(x), archs, mutants, kids)
        ok = valid(checked)
        out = dict(
            sample_keys=sample_keys[:BATCH], mut_keys=mut_keys,
            archs=archs, valid=ok[:BATCH], mutants=mutants, mutants_valid=ok[BATCH:2 * BATCH],
            nbrs=nbrs, mask=mask, nbrs_valid=jax.vmap(valid)(nbrs),
            kids_valid=ok[2 * BATCH:3 * BATCH], self_kids=jax.tree.map(lambda x: x[BATCH:], kids),
        )
        if space.enumerable:
            idx = jax.vmap(space.index)(archs)
            out.update(index=idx, from_index=jax.vmap(space.from_index)(idx),
                       nbr_index=jax.vmap(jax.vmap(space.index))(nbrs))
        return out

    return jax.jit(run)


@functools.cache
def single(space):
    """The same primitives jitted *without* vmap, for one architecture."""

    def run(k_sample, k_mut, arch):
        out = dict(sample=space.sample(k_sample), valid=space.is_valid(arch),
                   mutant=space.mutate(k_mut, arch), neighbours=space.neighbours(arch))
        if space.enumerable:
            out["index"] = space.index(arch)
        return out

    return jax.jit(run)


def draw(space, seed):
    """The batched results for ``seed`` as numpy arrays (PRNG keys stay JAX arrays)."""
    r = batched(space)(seed)
    return {k: v if k.endswith("_keys") else np_tree(v) for k, v in r.items()}


# ----- properties ---------------------------------------------------------------

@pytest.mark.parametrize("name", names())
def test_structure(name):
    space = load(name)
    assert isinstance(space.size, int) and space.size > 0
    assert isinstance(space.ops, tuple) and all(isinstance(o, str) for o in space.ops)
    t = space.template()
    assert all(jnp.issubdtype(x.dtype, jnp.integer) for x in jax.tree.leaves(t))
    a = take(draw(space, 0)["archs"], 0)
    assert jax.tree.structure(a) == jax.tree.structure(t)
    assert all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(t)))
    v = jax.jit(space.is_valid)(t)  # the all-zeros buffer filler still gets a plain bool answer
    assert v.shape == () and v.dtype == jnp.bool_


@pytest.mark.parametrize("name", names())
@FEW
@given(seed=SEEDS)
def test_samples_and_mutants_are_valid(name, seed):
    space = load(name)
    r = draw(space, seed)
    assert r["valid"].all()
    assert r["mutants_valid"].all()
    has_nbr = r["mask"].any(axis=1)
    np.testing.assert_array_equal(rows_differ(r["mutants"], r["archs"]), has_nbr)
    dist = distance_fn(space)
    if dist is not None:
        assert np.all(dist(r["mutants"], r["archs"])[has_nbr] == 1)


@pytest.mark.parametrize("name", names())
@FEW
@given(seed=SEEDS)
def test_neighbours_are_valid_single_edits(name, seed):
    space = load(name)
    r = draw(space, seed)
    dist = distance_fn(space)
    assert r["nbrs_valid"][r["mask"]].all()
    for i in range(BATCH):
        a, rows, m = take(r["archs"], i), take(r["nbrs"], i), r["mask"][i]
        n = m.shape[0]
        assert np.all(rows_differ(rows, expand(a, n))[m])
        if dist is not None:
            assert np.all(dist(rows, expand(a, n))[m] == 1)
        if not m.any():
            continue  # e.g. the NB101 cell input->output alone: every one-edit change is invalid or the same cell
        kept = take(rows, np.flatnonzero(m))
        flat = np.concatenate([x.reshape(x.shape[0], -1).astype(np.int64) for x in jax.tree.leaves(kept)], axis=1)
        assert len(np.unique(flat, axis=0)) == flat.shape[0], "masked neighbours must be distinct"


@functools.cache
def _enumerated(space):
    return space.enumerate()


@pytest.mark.parametrize("name", names())
@FEW
@given(seed=SEEDS)
def test_neighbourhood_is_complete(name, seed):
    space = load(name)
    dist = distance_fn(space)
    if not space.enumerable or space.size > BRUTE_FORCE_MAX or dist is None:
        pytest.skip("brute force only for small enumerable spaces with an edit metric")
    everything = np_tree(_enumerated(space))
    r = draw(space, seed)
    for i in range(BATCH):
        a = take(r["archs"], i)
        want = np.flatnonzero(dist(everything, expand(a, space.size)) == 1)
        got = r["nbr_index"][i][r["mask"][i]]
        np.testing.assert_array_equal(np.sort(got), want)


@pytest.mark.parametrize("name", names())
@FEW
@given(seed=SEEDS)
def test_crossover_children_are_valid(name, seed):
    space = load(name)
    r = draw(space, seed)
    assert r["kids_valid"].all()
    assert tree_equal(r["self_kids"], r["archs"]), "crossing an architecture with itself gives it back"


@pytest.mark.parametrize("name", names())
@VERY_FEW
@given(seed=SEEDS)
def test_string_and_graph_round_trip(name, seed):
    space = load(name)
    archs = draw(space, seed)["archs"]
    for i in range(4):
        a = take(archs, i)
        text = space.to_string(a)
        assert isinstance(text, str)
        assert tree_equal(space.from_string(text), a), text
        g = space.to_networkx(a)
        assert isinstance(g, nx.DiGraph) and g.number_of_nodes() > 0


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("text", ["", "not an architecture", "|||", "adj=;ops=", "Genotype()", "1-2-3"])
def test_from_string_rejects_malformed_text(name, text):
    space = load(name)
    with pytest.raises(JnasError):
        space.from_string(text)


@pytest.mark.parametrize("name", names())
@FEW
@given(seed=SEEDS)
def test_index_round_trip(name, seed):
    space = load(name)
    if not space.enumerable:
        pytest.skip("not enumerable")
    r = draw(space, seed)
    idx = r["index"]
    assert idx.dtype == np.int32 and np.all((idx >= 0) & (idx < space.size))
    assert tree_equal(r["from_index"], r["archs"])
    assert tree_equal(space.from_index(idx[0]), take(r["archs"], 0))


@pytest.mark.parametrize("name", names())
def test_enumerate_is_in_index_order(name):
    space = load(name)
    if not space.enumerable:
        with pytest.raises(NotImplementedError):
            space.enumerate()
        return
    everything = _enumerated(space)
    assert jax.tree.leaves(everything)[0].shape[0] == space.size
    index, valid = jax.jit(lambda e: (jax.vmap(space.index)(e), jax.vmap(space.is_valid)(e)))(everything)
    np.testing.assert_array_equal(index, np.arange(space.size))
    assert np.all(valid)


@pytest.mark.parametrize("name", names())
@VERY_FEW
@given(seed=SEEDS)
def test_jit_and_vmap_match_single_calls(name, seed):
    space = load(name)
    r = draw(space, seed)
    one = single(space)
    for i in range(2):
        a = take(r["archs"], i)
        s = np_tree(one(r["sample_keys"][i], r["mut_keys"][i], a))
        assert tree_equal(s["sample"], a)
        assert bool(s["valid"]) == bool(r["valid"][i])
        assert tree_equal(s["mutant"], take(r["mutants"], i))
        assert tree_equal(s["neighbours"], (take(r["nbrs"], i), r["mask"][i]))
        if space.enumerable:
            assert int(s["index"]) == int(r["index"][i])


# ----- self-description (decisions, op slots, graphs, encodings) ---------------------------

from jnas.spaces.base import OPTIONAL  # noqa: E402


@functools.cache
def described(space):
    """One jitted program computing the self-description of a batch of architectures."""

    def run(archs):
        out = {"canonical": jax.vmap(space.canonicalize)(archs)}
        if space.supports("decisions"):
            tokens = jax.vmap(space.to_decisions)(archs)
            out.update(tokens=tokens, live=jax.vmap(space.live_decisions)(tokens),
                       back=jax.vmap(lambda t: space.canonicalize(space.from_decisions(t)))(tokens),
                       onehot=jax.vmap(space.onehot)(archs))
        if space.supports("op_slot_layout"):
            slots = jax.vmap(space.op_slots)(archs)
            out.update(slots=slots, same=jax.vmap(space.with_op_slots)(archs, slots))
        if space.supports("graph_tensors"):
            out["graph"] = jax.vmap(space.graph_tensors)(archs)
        return out

    return jax.jit(run)


@pytest.mark.parametrize("name", names())
def test_optional_members_are_defined_or_a_one_line_error(name):
    space = load(name)
    args = {"relaxation": (), "onehot_names": (), "with_op_slots": (space.template(), None)}
    for member in OPTIONAL:
        if space.supports(member):
            continue
        with pytest.raises(JnasError) as err:
            attr = getattr(space, member)  # properties raise here, methods when called
            attr(*args.get(member, (space.template(),)))
        msg = str(err.value)
        assert msg.startswith(f"space: got {name!r}, which does not define ") and "\n" not in msg, msg
    assert isinstance(space.generated, bool)


@pytest.mark.parametrize("name", names())
@VERY_FEW
@given(seed=SEEDS)
def test_self_description_round_trips(name, seed):
    space = load(name)
    archs = draw(space, seed)["archs"]
    r = np_tree(described(space)(archs))
    assert tree_equal(r["canonical"], archs), "members are canonical"
    if "tokens" in r:
        dec = space.decisions
        card = np.asarray(dec.cardinality)
        assert len(dec.names) == len(dec.values) == len(card) and [len(v) for v in dec.values] == card.tolist()
        t, live = r["tokens"], r["live"]
        assert t.shape == (BATCH, len(card)) and np.all((t >= 0) & (t < card))
        assert live.dtype == np.bool_ and (dec.conditional or live.all())
        assert np.all(t[~live] == 0), "dead decisions hold 0"
        assert tree_equal(r["back"], archs), "from_decisions(to_decisions(arch)) is arch"
        onehot = r["onehot"]
        assert onehot.shape == (BATCH, len(space.onehot_names())) and set(np.unique(onehot)) <= {0.0, 1.0}
    if "slots" in r:
        layout = space.op_slot_layout
        assert r["slots"].shape == (BATCH, layout.cells, layout.slots)
        ids = [space.ops.index(o) for o in layout.ops]
        assert np.isin(r["slots"], ids).all()
        assert tree_equal(r["same"], archs)
    if "graph" in r:
        a, x, mask = r["graph"]
        layout = space.graph_layout
        wiring = np.asarray(layout.wiring, bool)
        lead = (len(layout.cells),) if layout.cells else ()
        assert wiring.shape == lead + (wiring.shape[-1],) * 2
        assert a.shape == (BATCH,) + wiring.shape and x.shape[-1] == len(layout.labels)
        assert np.all((a == 0) | wiring), "every edge is one the layout allows"
        assert np.all(x[~mask] == 0) and np.all(x[mask].sum(-1) == 1)
