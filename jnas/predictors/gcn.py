"""GCN predictor of Mauch et al., "Efficient Sampling for Predictor-Based NAS".

The network (their eqs. 3–4): ``layers`` graph convolutions

    X_g = ReLU(D̃^{-1/2} Ã X_{g-1} W_g),   Ã = A + I,   D̃ = diag(Ã 1),

then the mean of the node features over the graph's real nodes and one linear
output unit. As in the paper (its footnote 2) Ã is normalised by D̃^{-1/2} on
the left only, not symmetrically as in Kipf & Welling. ``A[i, j] = 1`` when
node ``i`` feeds node ``j`` (``jnas.encodings.graph_tensors``), so a node
aggregates itself and its successors. Padded nodes (``node_mask`` False) are
cut out of Ã, so they neither send nor receive, and are left out of the mean:
the score is invariant to any permutation of the nodes and to padding. The
convolutions have no bias, as in eq. 3.

Training (``loss="ranking"``, the paper's eqs. 5–7): for ordered pairs
``(i, j)``, ``i != j``, of real rows, ``p(y_i >= y_j) = sigmoid(f_i - f_j)``
and the loss is the mean binary cross-entropy against the indicator
``y_i >= y_j`` (ties count as 1 both ways, which pulls tied scores together).
``loss="mse"`` instead regresses the standardised targets. Both use SGD with
momentum 0.9, a cosine decay of the learning rate to zero over ``steps`` and
a global gradient-norm clip. The paper trains 3 layers of 256 features with
lr 0.01 for 2000 (minibatch) epochs; the defaults here keep the network and
optimiser but take 500 full-batch steps at lr 0.1, which reach the same
number of effective updates at a fraction of the sequential steps (see
``GCN``'s ``lr``).

``batch_pairs=None`` (default) trains full-batch: every step scores all rows
and uses every ordered pair of real rows, ``O(n²)`` pair terms — cheap for the
hundreds to a few thousand observations of a search. ``batch_pairs=B`` draws
``B`` random pairs of real rows per step and scores only those ``2B`` graphs
(MSE: ``B`` random real rows), for large training sets.

Non-finite targets of real rows are failures: the ranking loss treats them as
the worst value; the MSE loss ignores them.

Scoring cost. ``gcn_scores`` builds ``D̃^{-1/2} Ã`` once per graph, padding
cut out (``normalized_adjacency``), so a layer is one small ``v×v`` product
and one ``[v, d_in] @ [d_in, d_out]`` product with no per-layer masking; a
padded node's row of the normalised Ã is zero, which keeps its features zero
through every layer and out of the mean. The ``v×v`` product goes on the
narrow side of each weight matrix (``(Ã h) W`` when ``d_in < d_out``, as for
one-hot inputs). ``bulk_scores`` (what ``predict`` runs) streams large
batches in blocks of a few hundred graphs, whose activations
(``[block, v, hidden]``) stay in the CPU cache (10⁵ NB101 graphs in one
piece are memory-bound and several times slower), and for one-hot labels
turns the second layer's first product into a table lookup: the first
layer sees a node only through the label counts of the node and its
successors, of which there are few (792 for NB101). On CPU, graphs with
padding are first sorted by their number of real nodes, with the real nodes
moved to the front of each graph, and each block runs on its node slots cut
to the block's largest count (``lax.switch`` over the counts), so padded
slots cost nothing: random NB101 cells have 4.15 real nodes of 7.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jnas.batching import sequential_vmap
from jnas.errors import JnasError, bad_argument, check_int, check_positive
from jnas.predictors.base import Predictor, full_mask

LOSSES = ("ranking", "mse")


def init_params(key: jax.Array, n_features: int, hidden: int, layers: int) -> dict:
    """Fresh GCN parameters: ``gc`` list of ``float[d_in, hidden]``, ``out_w float[hidden]``, ``out_b float[]``.

    He-normal weights (variance 2 / fan-in: with the D̃^{-1/2} normalisation
    this keeps the activations' scale through the ReLU layers), zero bias.
    ``scale`` (``float[2]``: mean, std) maps raw outputs to predictions; it is
    ``(0, 1)`` until an MSE fit sets it to the targets' mean and std.
    """
    dims = [n_features] + [hidden] * layers + [1]
    sizes = [i * o for i, o in zip(dims[:-1], dims[1:])]
    # one draw sliced into every matrix: a single PRNG call site compiles much faster on CPU
    flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    ws, start = [], 0
    for g, (i, o, size) in enumerate(zip(dims[:-1], dims[1:], sizes)):
        gain = 2.0 if g < layers else 1.0  # the output unit has no ReLU after it
        ws.append(flat[start : start + size].reshape(i, o) * jnp.sqrt(gain / i))
        start += size
    return {"gc": ws[:-1], "out_w": ws[-1][:, 0], "out_b": jnp.zeros((), jnp.float32), "scale": jnp.array([0.0, 1.0])}


def _masked_adjacency(A: jax.Array, node_mask: jax.Array | None) -> jax.Array:
    """``Ã = A + I`` (``float[..., v, v]``) with the rows and columns of padded nodes zeroed."""
    v = A.shape[-1]
    a = A.astype(jnp.float32) + jnp.eye(v, dtype=jnp.float32)
    if node_mask is None:
        return a
    m = node_mask.astype(jnp.float32)
    return a * m[..., :, None] * m[..., None, :]


def _inv_sqrt_degree(a: jax.Array) -> jax.Array:
    """``D̃^{-1/2}`` as ``float[..., v]`` of a masked ``Ã``; a row that sums to 0 gets 0, not a division by 0."""
    deg = a.sum(-1)
    return jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1.0)), 0.0)


def normalized_adjacency(A: jax.Array, node_mask: jax.Array | None = None) -> jax.Array:
    """``D̃^{-1/2} Ã`` (``float[..., v, v]``) of ``A float[..., v, v]``, padding cut out of ``Ã = A + I``.

    ``node_mask`` (``bool[..., v]``) marks the real nodes; ``None`` means all
    are real (no masking work). Rows and columns of padded nodes are zero.
    """
    a = _masked_adjacency(A, node_mask)
    return a * _inv_sqrt_degree(a)[..., None]


def _graph_conv(a: jax.Array, h: jax.Array, w: jax.Array) -> jax.Array:
    """One graph convolution ``ReLU(a h w)`` -> ``float[n, v, d_out]``.

    ``a float[n, v, v]`` (``normalized_adjacency``), ``h float[n, v, d_in]``,
    ``w float[d_in, d_out]``. ``a (h w) = (a h) w``: the ``v×v`` product runs
    on the narrower of ``d_in``, ``d_out``.
    """
    if w.shape[0] < w.shape[1]:
        return jax.nn.relu(jnp.einsum("...ij,...jd->...id", a, h) @ w)
    return jax.nn.relu(jnp.einsum("...ij,...jd->...id", a, h @ w))


def _pool(params: dict, h: jax.Array, node_mask: jax.Array | None) -> jax.Array:
    """Mean over real nodes, then the output unit: ``h float[n, v, d]`` -> ``float[n]``.

    ``h`` must be zero on padded nodes (a padded row of the normalised Ã makes it so).
    """
    if node_mask is None:
        count = jnp.float32(h.shape[-2])
    else:
        count = jnp.maximum(node_mask.sum(-1), 1).astype(jnp.float32)
    return (h.sum(-2) @ params["out_w"]) / count + params["out_b"]


def gcn_scores(params: dict, A: jax.Array, X: jax.Array, node_mask: jax.Array | None = None) -> jax.Array:
    """Raw GCN outputs ``float[n]`` of a batch ``A float[n, v, v]``, ``X float[n, v, f]``, ``node_mask bool[n, v]``.

    ``node_mask=None`` is the fast path for graphs whose nodes are all real.
    Pure and differentiable; for large ``n`` prefer ``bulk_scores`` (same values).
    """
    a = normalized_adjacency(A, node_mask)
    h = X.astype(jnp.float32)
    if node_mask is not None:
        h = h * node_mask[..., None]  # only matters without layers: a padded row of `a` zeroes its node
    for w in params["gc"]:
        h = _graph_conv(a, h, w)
    return _pool(params, h, node_mask)


# ----- bulk scoring ----------------------------------------------------------------------------
#
# With integer node features (one-hot labels) and a 0/1 A, the first layer's input at node i, (Ã X)_i,
# counts each label among i and its successors: a vector c of non-negative integers summing to at most
# v, one of C(v + f, f) (792 for NB101's v = 7, f = 5). As D̃_ii^{-1/2} >= 0 commutes with the ReLU, the
# second layer's h_1 W_2 at node i is D̃_ii^{-1/2} relu(c W_1) W_2: a row of a table with one row per
# possible c, built once per call. A lookup then replaces the first [v, 256] @ [256, 256] product.

#: activations per scoring block (float32): 2 MiB, one core's L2 on the reference machine. At 7 x 256
#: that is 292 graphs; 128-1024 measured as fast, 2000+ up to 3x slower (memory-bound).
_BLOCK_FLOATS = 1 << 19
#: the count table's rows at most: beyond it (many labels or nodes), the plain path
_MAX_TABLE_ROWS = 1 << 16


def _blocking(n: int, graph_floats: int) -> tuple[int, int]:
    """``(n_blocks, block)``: ``n`` graphs of ``graph_floats`` activations each in about ``_BLOCK_FLOATS`` blocks.

    The blocks are evenly filled: the padding is under one graph per block
    (blocks of a fixed size would pad the last one up to a whole block).
    """
    target = max(1, _BLOCK_FLOATS // max(graph_floats, 1))
    n_blocks = max(1, -(-n // target))
    return n_blocks, -(-n // n_blocks)


def _table_rows(v: int, f: int) -> int:
    """Count vectors ``c int[f] >= 0`` with ``sum(c) <= v``: ``C(v + f, f)``."""
    return math.comb(v + f, f)


@functools.lru_cache(maxsize=16)
def _count_vectors(v: int, f: int) -> np.ndarray:
    """``float32[C(v + f, f), f]``: every count vector, row ``r`` the one whose ``_count_keys`` is ``r``.

    ``c`` is the set of ``f`` "bars" ``s_k = c_0 + ... + c_k + k`` in ``[0, v + f)``,
    ranked in the combinatorial number system (``sum_k C(s_k, k + 1)``).
    """
    out = np.zeros((_table_rows(v, f), f), np.float32)
    for bars in itertools.combinations(range(v + f), f):
        rank = sum(math.comb(s, k + 1) for k, s in enumerate(bars))
        out[rank] = np.diff(bars, prepend=-1) - 1
    return out


def _count_keys(A: jax.Array, X: jax.Array, node_mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """``(keys int32[n, v], ok bool[])``: each node's row of the count table, and whether every ``(Ã X)_i``
    is a count vector (integral, ``>= 0``, summing to at most ``v``) so that the table is exact."""
    v, f = X.shape[-2:]
    c = jnp.einsum("...ij,...jf->...if", _masked_adjacency(A, node_mask), X.astype(jnp.float32))
    ci = jnp.round(c)
    ok = jnp.all((c == ci) & (ci >= 0)) & jnp.all(ci.sum(-1) <= v)
    bars = jnp.cumsum(jnp.clip(ci, 0, v).astype(jnp.int32), -1) + jnp.arange(f)
    binom = np.array([[math.comb(s, k) for k in range(1, f + 1)] for s in range(v + f)], np.int32)
    keys = jnp.asarray(binom)[jnp.minimum(bars, v + f - 1), jnp.arange(f)].sum(-1)
    return keys, ok


def _tabulated_scores(params: dict, table: jax.Array, A: jax.Array, node_mask: jax.Array | None, keys: jax.Array):
    """``gcn_scores`` from the count table: ``table float[R, d_2]`` (``relu(C W_1) W_2``), ``keys int32[n, v]``."""
    a = _masked_adjacency(A, node_mask)
    r = _inv_sqrt_degree(a)
    a = a * r[..., None]
    h = jax.nn.relu(jnp.einsum("...ij,...jd->...id", a, r[..., None] * table[keys]))
    for w in params["gc"][2:]:
        h = _graph_conv(a, h, w)
    return _pool(params, h, node_mask)


def _to_blocks(t: jax.Array, n_blocks: int, size: int) -> jax.Array:
    """``t`` (leading axis ``n <= n_blocks * size``) zero-padded and reshaped to ``[n_blocks, size, ...]``."""
    t = jnp.pad(t, [(0, n_blocks * size - t.shape[0])] + [(0, 0)] * (t.ndim - 1))
    return t.reshape((n_blocks, size) + t.shape[1:])


def _blocked(fn, n_blocks: int, size: int, arrays) -> jax.Array:
    """``fn(*block)`` over ``arrays`` (leading axis ``n``, ``None`` allowed) cut into ``n_blocks`` of ``size``."""
    n = jax.tree.leaves(arrays)[0].shape[0]
    if n_blocks <= 1:
        return fn(*arrays)
    blocks = jax.tree.map(lambda t: _to_blocks(t, n_blocks, size), arrays)
    return jax.lax.map(lambda b: fn(*b), blocks).reshape(-1)[:n]


def _compact_sorted(A: jax.Array, X: jax.Array, node_mask: jax.Array):
    """The graphs with their real nodes first (each graph's own order kept), sorted by real-node count.

    Returns ``(A, X, node_mask, counts int32[n], order int32[n])``: row ``i`` is input graph ``order[i]``.
    A permutation of a graph's nodes leaves its score unchanged (see the module docstring).
    """
    perm = jnp.argsort(~node_mask, axis=-1, stable=True)  # [n, v]
    A = jnp.take_along_axis(jnp.take_along_axis(A, perm[:, :, None], 1), perm[:, None, :], 2)
    X = jnp.take_along_axis(X, perm[:, :, None], 1)
    node_mask = jnp.take_along_axis(node_mask, perm, 1)
    counts = node_mask.sum(-1, dtype=jnp.int32)
    order = jnp.argsort(counts, stable=True)
    return A[order], X[order], node_mask[order], counts[order], order


def _blocked_by_size(fn, n_blocks: int, size: int, arrays, node_axes, counts: jax.Array) -> jax.Array:
    """``_blocked`` for graphs sorted by real-node count with their real nodes first: each block runs on its
    arrays cut to its largest count (one branch per node count, picked by ``lax.switch``), so the padded
    node slots cost nothing. ``node_axes``: per array, the axes that index nodes."""
    n = counts.shape[0]
    v = arrays[0].shape[node_axes[0][0]]

    def cut(k, t, axes):
        return t[tuple(slice(0, k) if ax in axes else slice(None) for ax in range(t.ndim))]

    branches = [lambda b, k=k: fn(*(cut(k, t, axes) for t, axes in zip(b, node_axes))) for k in range(1, v + 1)]
    largest = jnp.clip(_to_blocks(counts, n_blocks, size).max(1), 1, v)
    blocks = tuple(_to_blocks(t, n_blocks, size) for t in arrays)
    return jax.lax.map(lambda bk: jax.lax.switch(bk[1] - 1, branches, bk[0]), (blocks, largest)).reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames="block")
def bulk_scores(
    params: dict, A: jax.Array, X: jax.Array, node_mask: jax.Array | None = None, block: int | None = None
) -> jax.Array:
    """``gcn_scores`` of any number of graphs (``float[n]``), ``block`` graphs at a time.

    Jitted and cached per input shape, so an eager call compiles once. The
    graphs are zero-padded to whole blocks (dropped from the result) and the
    blocks run under ``lax.map``; ``block=None`` sizes them to the CPU cache.
    When every node's ``(Ã X)_i`` is a label-count vector (always, for one-hot
    labels and a 0/1 ``A``) and the table has at most a quarter as many rows
    as there are nodes to score, the second layer's first product is a table
    lookup (see above); otherwise, or with fewer than 2 layers, ``gcn_scores``
    runs as it is. On CPU, padded graphs in several blocks are scored sorted by
    real-node count, each block cut to its largest count (see above). All
    paths give the same values up to float round-off.
    """
    n, v, f = X.shape
    width = max([f] + [w.shape[1] for w in params["gc"]])
    n_blocks, size = (-(-n // block), block) if block else _blocking(n, v * width)
    # on CPU, where scoring is compute-bound, graphs with padding are sorted by real-node count and each
    # block runs on node slots cut to its largest count (NB101: 4.15 real nodes of 7 on average). Under
    # vmap a switch runs every branch, so that path loops over a vmapped batch (seeds) instead
    if node_mask is not None and n_blocks > 1 and jax.default_backend() == "cpu":
        return sequential_vmap(lambda *a: _bulk(*a, n_blocks, size, True))(params, A, X, node_mask)
    return _bulk(params, A, X, node_mask, n_blocks, size, False)


def _bulk(params, A, X, node_mask, n_blocks: int, size: int, by_size: bool) -> jax.Array:
    """``bulk_scores``'s body in ``n_blocks`` blocks of ``size`` graphs (``by_size``: sorted by node count)."""
    n, v, f = X.shape
    if by_size:
        A, X, node_mask, counts, order = _compact_sorted(A, X, node_mask)

    def run(fn, arrays, node_axes):
        if by_size:
            return _blocked_by_size(fn, n_blocks, size, arrays, node_axes, counts)
        return _blocked(fn, n_blocks, size, arrays)

    def plain():
        return run(lambda *g: gcn_scores(params, *g), (A, X, node_mask), ((1, 2), (1,), (1,)))

    def unsorted(scores):
        return jnp.zeros_like(scores).at[order].set(scores) if by_size else scores

    rows = _table_rows(v, f)
    if len(params["gc"]) < 2 or rows > _MAX_TABLE_ROWS or 4 * rows > n * v:
        return unsorted(plain())
    keys, ok = _count_keys(A, X, node_mask)

    def tabulated():
        w1, w2 = params["gc"][:2]
        table = jax.nn.relu(jnp.asarray(_count_vectors(v, f)) @ w1) @ w2
        return run(lambda *g: _tabulated_scores(params, table, *g), (A, node_mask, keys), ((1, 2), (1,), (1,)))

    return unsorted(jax.lax.cond(ok, tabulated, plain))


def _check_graphs(X, n: int | None = None):
    """Validate a batch of graph tensors and return it as three arrays."""
    expected = "graph tensors (A float[n, v, v], X float[n, v, f], node_mask bool[n, v])"
    if not isinstance(X, (tuple, list)) or len(X) != 3:
        raise JnasError(f"X: got {type(X).__name__}, expected {expected}")
    a, x, m = (jnp.asarray(t) for t in X)
    if (
        a.ndim != 3
        or a.shape[1] != a.shape[2]
        or x.ndim != 3
        or m.ndim != 2
        or x.shape[:2] != a.shape[:2]
        or m.shape != a.shape[:2]
    ):
        raise JnasError(f"X: got shapes {a.shape}, {x.shape}, {m.shape}, expected {expected}")
    if n is not None and a.shape[0] != n:
        raise JnasError(f"X: got {a.shape[0]} graphs, expected {n} (one per target in y)")
    return a, x, m.astype(bool)


def _check_targets(y, mask):
    y = jnp.asarray(y)
    if y.ndim != 1:
        raise bad_argument("y", y.shape, "a float[n] vector")
    mask = full_mask(y, mask if mask is None else jnp.asarray(mask))
    if mask.shape != y.shape:
        raise bad_argument("mask", mask.shape, f"a bool[{y.shape[0]}] vector like y")
    return y.astype(jnp.float32), mask.astype(bool)


def _real_ranks(key, count, size: int) -> jax.Array:
    """``size`` uniform ranks in ``[0, count)``: which real row (the k-th) to draw.

    Drawing ranks rather than buffer rows means masked rows anywhere in the
    buffer change nothing, not even the random stream.
    """
    return jnp.floor(jax.random.uniform(key, (size,)) * count).astype(jnp.int32)


def _pair_terms(fi, fj, yi, yj):
    """``-ln p(y | A_i, A_j)`` (eqs. 5–7): ``p(y=1) = sigmoid(f_i - f_j)``, ``y = [y_i >= y_j]``."""
    lab = (yi >= yj).astype(jnp.float32)
    d = fi - fj
    return -(lab * jax.nn.log_sigmoid(d) + (1.0 - lab) * jax.nn.log_sigmoid(-d))


class GCN(Predictor):
    """Graph-convolutional predictor on ``(A, X, node_mask)`` graph tensors.

    Parameters
    ----------
    hidden: features per node in each graph convolution (paper: 256; 32–64
        rank NB201 about as well and are ~10× cheaper on CPU).
    layers: number of graph convolutions, ``G - 2`` in the paper (3).
    loss: ``"ranking"`` (pairwise cross-entropy, eqs. 5–7) or ``"mse"`` (standardised targets).
    steps: optimiser steps (a full-batch step is an epoch).
    lr: initial SGD learning rate, decayed to 0 by a cosine schedule; momentum 0.9.
        The paper uses 0.01 for 2000 minibatch epochs, i.e. many more updates
        than full-batch steps; with 500 full-batch steps 0.01 underfits (NB201
        Kendall τ ≈ 0.50 vs ≈ 0.67 with 0.1), hence the default 0.1.
    batch_pairs: ``None`` for full-batch training, else pairs (MSE: rows) per step.
    clip: global gradient-norm clip (``None``: off); it keeps the MSE loss
        from diverging at lr 0.1 on heavy-tailed targets and is idle for ranking.

    ``predict`` returns ``(score, zeros)``: for the ranking loss the score is
    unitless (only its order means anything); for MSE it is in the units of ``y``.
    """

    name = "gcn"

    def __init__(
        self,
        hidden: int = 256,
        layers: int = 3,
        loss: str = "ranking",
        steps: int = 500,
        lr: float = 0.1,
        batch_pairs: int | None = None,
        clip: float | None = 1.0,
    ):
        hidden, layers, steps = (check_int(arg, val, 1, expected="a positive integer")
                                 for arg, val in (("hidden", hidden), ("layers", layers), ("steps", steps)))
        if loss not in LOSSES:
            raise bad_argument("loss", loss, "'ranking' or 'mse'")
        lr = check_positive("lr", lr)
        if clip is not None:
            check_positive("clip", clip, expected="a positive number or None")
        if batch_pairs is not None:
            batch_pairs = check_int("batch_pairs", batch_pairs, 1, expected="None or a positive integer")
        self.hidden, self.layers, self.loss = hidden, layers, loss
        self.steps, self.lr, self.batch_pairs = steps, lr, batch_pairs
        self.clip = None if clip is None else float(clip)

    def init(self, key: jax.Array, n_features: int) -> dict:
        """Untrained parameters for node features of width ``n_features``."""
        return init_params(key, n_features, self.hidden, self.layers)

    def fit(self, key: jax.Array, X, y: jax.Array, mask: jax.Array | None = None) -> dict:
        """Train from ``key``'s initialisation on graphs ``X`` with targets ``y float[n]`` (higher is better).

        Rows where ``mask`` is False take no part: their inputs are zeroed
        before use and every loss term touching them has weight 0.
        """
        y, mask = _check_targets(y, mask)
        a, x, nm = _check_graphs(X, y.shape[0])
        # zero unused rows so that NaN/inf garbage there cannot leak through 0-weights
        a = jnp.where(mask[:, None, None], a, 0.0)
        x = jnp.where(mask[:, None, None], x, 0.0)
        nm = nm & mask[:, None]
        k_init, k_train = jax.random.split(key)
        params = self.init(k_init, x.shape[-1])
        scale = params.pop("scale")

        if self.loss == "ranking":
            valid = mask
            yr = jnp.where(jnp.isfinite(y), y, -jnp.inf)  # failed evaluations rank last
        else:
            valid = mask & jnp.isfinite(y)
            cnt = jnp.maximum(valid.sum(), 1)
            mu = jnp.where(valid, y, 0.0).sum() / cnt
            sd = jnp.sqrt(jnp.where(valid, (y - mu) ** 2, 0.0).sum() / cnt)
            sd = jnp.where(sd > 0, sd, 1.0)
            yr = jnp.where(valid, (y - mu) / sd, 0.0)
            scale = jnp.stack([mu, sd])

        loss_fn = self._loss_fn(a, x, nm, yr, valid)
        opt = optax.sgd(optax.cosine_decay_schedule(self.lr, self.steps), momentum=0.9)
        if self.clip is not None:
            opt = optax.chain(optax.clip_by_global_norm(self.clip), opt)

        def step(carry, k):
            p, s = carry
            upd, s = opt.update(jax.grad(loss_fn)(p, k), s, p)
            return (optax.apply_updates(p, upd), s), None

        # full-batch steps draw nothing: no per-step keys to split
        keys = None if self.batch_pairs is None else jax.random.split(k_train, self.steps)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys, length=self.steps)
        params["scale"] = scale
        return params

    def _loss_fn(self, a, x, nm, yr, valid):
        """``loss(params, key)`` for this predictor's loss and batching."""
        n = yr.shape[0]
        bp = self.batch_pairs
        order = jnp.argsort(~valid, stable=True)  # real rows first, in buffer order
        count = valid.sum()

        def mse(p, k):
            if bp is None:
                err = (gcn_scores(p, a, x, nm) - yr) ** 2
                return jnp.where(valid, err, 0.0).sum() / jnp.maximum(count, 1)
            idx = order[jnp.clip(_real_ranks(k, count, bp), 0, n - 1)]
            err = (gcn_scores(p, a[idx], x[idx], nm[idx]) - yr[idx]) ** 2
            return jnp.where(count > 0, err.mean(), 0.0)

        def ranking(p, k):
            if bp is None:
                f = gcn_scores(p, a, x, nm)
                w = valid[:, None] & valid[None, :] & ~jnp.eye(n, dtype=bool)
                t = _pair_terms(f[:, None], f[None, :], yr[:, None], yr[None, :])
                return jnp.where(w, t, 0.0).sum() / jnp.maximum(w.sum(), 1)
            ki, kj = jax.random.split(k)
            ri = _real_ranks(ki, count, bp)
            rj = _real_ranks(kj, count - 1, bp)
            rj = rj + (rj >= ri)  # uniform over the other count - 1 real rows: never a pair (i, i)
            i, j = order[jnp.clip(ri, 0, n - 1)], order[jnp.clip(rj, 0, n - 1)]
            idx = jnp.concatenate([i, j])
            f = gcn_scores(p, a[idx], x[idx], nm[idx])
            t = _pair_terms(f[:bp], f[bp:], yr[i], yr[j])
            return jnp.where(count > 1, t.mean(), 0.0)

        return mse if self.loss == "mse" else ranking

    def predict(self, params: dict, X) -> tuple[jax.Array, jax.Array]:
        """``(score float[m], zeros float[m])`` for graphs ``X`` (leading axis ``m``)."""
        a, x, nm = _check_graphs(X)
        mean = bulk_scores(params, a, x, nm) * params["scale"][1] + params["scale"][0]
        return mean, jnp.zeros_like(mean)
