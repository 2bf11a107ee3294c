"""NAGO generators (HNAG, RNAG): spaces, graph generation and the networks built from them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

from jnas.errors import JnasError
from jnas.models import build_network
from jnas.models import nago as net
from jnas.models.cost import activation_bytes_per_image, count_params
from jnas.spaces import get_space
from jnas.spaces.nago import (
    ER,
    MERGES,
    NAGO,
    OPS,
    RNAG,
    WS,
    GeneratorConfig,
    NotEnumerableError,
    RNAGConfig,
    config_to_vector,
    er_dag,
    generate,
    hnag_config_from_vector,
    rnag_config_from_vector,
    seed_from_key,
    stage_of_nodes,
    ws_dag,
)

SMALL = (8, 8, 3)  # images: stem at 8x8, stages at 8, 4, 2
ALL_OPS = (1.0,) * len(OPS)
ALL_MERGES = (1.0,) * len(MERGES)


def small_hnag(**kw) -> GeneratorConfig:
    base = dict(top=WS(4, 3, 0.5), mid=ER(3, 0.6), bottom=WS(3, 2, 0.5))
    return GeneratorConfig(**{**base, **kw})


def undirected_connected(g: nx.DiGraph) -> bool:
    return nx.is_connected(g.to_undirected())


def abstract_forward(model, batch_shape):
    """Output shape of ``model`` (possibly abstract, from ``nnx.eval_shape``) on a float batch."""
    graphdef, state = nnx.split(model)
    return jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state,
                          jax.ShapeDtypeStruct(batch_shape, jnp.float32)).shape


# ----- generation -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_hnag_graphs_are_dags_with_the_configured_sizes(seed):
    cfg = hnag_config_from_vector([7, 4, 60, 4, 40, 5, 3, 30], op_probs=ALL_OPS, merge_probs=ALL_MERGES)
    g = generate(cfg, jax.random.key(seed))
    assert g.generator == "hnag" and g.top.number_of_nodes() == 7 and len(g.cells) == 7
    stages = [g.top.nodes[i]["stage"] for i in range(7)]
    assert stages == [c.stage for c in g.cells]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2} and np.all(np.diff(stages) <= 1)
    dags = [g.top] + [c.mid for c in g.cells] + [b for c in g.cells for b in c.bottoms]
    for d in dags:
        assert nx.is_directed_acyclic_graph(d)
        assert all(u < v for u, v in d.edges)  # oriented by node order
        assert sorted(d.nodes) == list(range(d.number_of_nodes()))
    for c in g.cells:
        assert c.mid.number_of_nodes() == 4 and len(c.bottoms) == 4
        assert all(b.number_of_nodes() == 5 for b in c.bottoms)
        for b in c.bottoms:
            assert all(b.nodes[i]["op"] in OPS for i in b.nodes)
            for i in b.nodes:  # a merge option only where there is something to merge
                assert (b.nodes[i]["merge"] in MERGES) == (b.in_degree(i) >= 2)
    assert g.num_ops == 7 * 4 * 5
    flat = g.to_networkx()
    assert nx.is_directed_acyclic_graph(flat) and flat.number_of_nodes() == g.num_ops + 2
    assert nx.has_path(flat, "input", "output")


def test_ws_graphs_are_connected_even_when_networkx_draws_disconnected_ones():
    model = WS(10, 2, 1.0)  # a fully rewired ring: networkx often returns a disconnected graph
    raw = [nx.is_connected(nx.watts_strogatz_graph(10, 2, 1.0, seed=s)) for s in range(50)]
    assert not all(raw)
    rng = np.random.default_rng(0)
    for _ in range(30):
        d = ws_dag(model, rng)
        assert d.number_of_nodes() == 10 and undirected_connected(d)
    g = generate(small_hnag(top=WS(10, 2, 1.0), bottom=WS(10, 2, 1.0), mid=ER(1, 0.5)), jax.random.key(1))
    assert undirected_connected(g.top) and all(undirected_connected(b) for c in g.cells for b in c.bottoms)


def test_er_level_allows_a_single_node_and_builds():
    cfg = small_hnag(mid=ER(1, 0.2))
    g = generate(cfg, jax.random.key(0))
    assert all(c.mid.number_of_nodes() == 1 and c.mid.number_of_edges() == 0 for c in g.cells)
    assert g.num_ops == 4 * 3
    m, params = net.choose_multiplier(g, cfg.channel_ratio, num_classes=5, param_limit=2e4, input_shape=SMALL)
    model = nnx.eval_shape(lambda: net.NagoNetwork(g, [r * m for r in cfg.channel_ratio], num_classes=5,
                                                   input_shape=SMALL, rngs=nnx.Rngs(0)))
    assert count_params(model) == params <= 2e4
    assert abstract_forward(model, (2, *SMALL)) == (2, 5)


def test_er_graphs_are_redrawn_for_connectivity():
    rng = np.random.default_rng(3)
    # p = 0.2 on 10 nodes is connected in only about a fifth of the draws; redraws make it connected
    assert all(undirected_connected(er_dag(ER(10, 0.2), rng)) for _ in range(10))


def test_k_is_clipped_to_n_minus_one():
    assert WS(3, 5, 0.3).k_used == 2 and WS(8, 5, 0.3).k_used == 5
    rng = np.random.default_rng(0)
    tri = ws_dag(WS(3, 5, 0.0), rng)  # k = 5 would be invalid for networkx (k >= n)
    assert sorted(tri.edges) == [(0, 1), (0, 2), (1, 2)]
    # no rewiring: the ring lattice, n * (k // 2) edges (networkx uses k // 2 neighbours per side)
    assert ws_dag(WS(4, 5, 0.0), rng).number_of_edges() == 4  # k clipped to 3 -> 1 per side
    assert ws_dag(WS(9, 4, 0.0), rng).number_of_edges() == 18
    g = generate(hnag_config_from_vector([3, 5, 50, 2, 50, 3, 5, 50]), jax.random.key(0))
    assert g.num_ops == 3 * 2 * 3


def test_same_key_same_graphs_and_different_keys_differ():
    cfg = hnag_config_from_vector([8, 4, 70, 4, 50, 6, 4, 70], op_probs=ALL_OPS, merge_probs=ALL_MERGES)
    a = generate(cfg, jax.random.key(11))
    assert a.signature() == generate(cfg, jax.random.key(11)).signature()
    others = {generate(cfg, jax.random.key(s)).signature() for s in range(5)}
    assert len(others) == 5
    r = rnag_config_from_vector([20, 4, 75] * 3)
    assert generate(r, jax.random.key(2)).signature() == generate(r, jax.random.key(2)).signature()
    assert generate(r, jax.random.key(2)).signature() != generate(r, jax.random.key(3)).signature()
    # typed and raw keys with the same seed give the same seed, ints are refused
    assert seed_from_key(jax.random.key(5)) == seed_from_key(jax.random.key(5))
    assert seed_from_key(jax.random.key(5)) != seed_from_key(jax.random.key(6))
    with pytest.raises(JnasError, match="key"):
        seed_from_key(5)


def test_rnag_is_three_ws_stages_in_sequence():
    cfg = rnag_config_from_vector([12, 4, 30, 15, 6, 50, 10, 10, 90])
    g = generate(cfg, jax.random.key(0))
    assert g.generator == "rnag" and sorted(g.top.edges) == [(0, 1), (1, 2)]
    assert [c.stage for c in g.cells] == [0, 1, 2]
    assert [c.mid.number_of_nodes() for c in g.cells] == [12, 15, 10]
    assert all(undirected_connected(c.mid) and nx.is_directed_acyclic_graph(c.mid) for c in g.cells)
    assert all(b.number_of_nodes() == 1 and b.nodes[0]["op"] == "conv3x3" for c in g.cells for b in c.bottoms)
    assert g.num_ops == 37 and g.cells[2].mid.number_of_edges() == 10 * (9 // 2)  # k = 10 clipped to 9: 4 per side


def test_stage_assignment():
    assert stage_of_nodes(3, (1, 1, 1)) == [0, 1, 2]
    assert stage_of_nodes(4, (1, 1, 1)) == [0, 0, 1, 2]
    assert stage_of_nodes(9, (1, 1, 1)) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stage_of_nodes(6, (2, 1, 1)) == [0, 0, 0, 1, 1, 2]
    # extreme ratios still give every stage a node, one stage at a time
    assert stage_of_nodes(10, (0.45, 0.04, 0.51)) == [0, 0, 0, 0, 0, 1, 2, 2, 2, 2]
    assert stage_of_nodes(3, (0.9, 0.05, 0.05)) == [0, 1, 2]


# ----- hyperparameter vectors and the space ------------------------------------------------------

def test_vectors_configs_and_strings_round_trip():
    v = np.array([10, 5, 100, 1, 20, 3, 2, 10], np.int16)
    cfg = hnag_config_from_vector(v)
    assert cfg.top == WS(10, 5, 1.0) and cfg.mid == ER(1, 0.2) and cfg.bottom == WS(3, 2, 0.1)
    assert cfg.channel_ratio == (1, 2, 4) and cfg.op_probs[0] == 1 and cfg.merge_probs[0] == 1
    np.testing.assert_array_equal(config_to_vector(cfg), v)
    assert NAGO.to_string(v) == "top=WS(n=10,k=5,p=1.00) mid=ER(n=1,p=0.20) bottom=WS(n=3,k=2,p=0.10)"
    np.testing.assert_array_equal(NAGO.from_string(NAGO.to_string(v)), v)
    r = np.array([40, 10, 75, 10, 2, 10, 32, 4, 75], np.int16)
    np.testing.assert_array_equal(config_to_vector(RNAG.config(r)), r)
    np.testing.assert_array_equal(RNAG.from_string(RNAG.to_string(r)), r)
    assert get_space("nago") is NAGO and get_space("rnag") is RNAG


@pytest.mark.parametrize("index, value", [(0, 2), (0, 11), (1, 1), (1, 6), (2, 9), (2, 101), (3, 0), (3, 11),
                                          (4, 19), (5, 2), (6, 6), (7, 101)])
def test_out_of_range_hyperparameters_name_the_field(index, value):
    v = np.array([5, 3, 50, 3, 50, 5, 3, 50])
    v[index] = value
    name = NAGO.fields[index].name
    with pytest.raises(JnasError, match=rf"arch\[{index}\] \({name}\): got {value}"):
        hnag_config_from_vector(v)
    assert not bool(NAGO.is_valid(v))
    with pytest.raises(JnasError, match=rf"arch\[{index}\] \({name}\)"):
        net.build(v, num_classes=10, rngs=nnx.Rngs(0))


def test_malformed_vectors_and_strings_and_configs_are_refused():
    with pytest.raises(JnasError, match="8 integers"):
        hnag_config_from_vector([5, 3, 50])
    with pytest.raises(JnasError, match="arch"):
        hnag_config_from_vector([5, 3, 50.5, 3, 50, 5, 3, 50])
    with pytest.raises(JnasError, match=r"arch\[0\] \(stage1_n\)"):
        rnag_config_from_vector([9, 4, 50] * 3)
    with pytest.raises(JnasError, match="multiple of 0.01"):
        NAGO.from_string("top=WS(n=5,k=3,p=0.555) mid=ER(n=3,p=0.50) bottom=WS(n=5,k=3,p=0.50)")
    with pytest.raises(JnasError, match="graphs like"):
        NAGO.from_string("top=WS(n=5,k=3,p=0.50) bottom=WS(n=5,k=3,p=0.50)")
    with pytest.raises(JnasError, match=r"arch\[3\] \(mid_n\)"):
        NAGO.from_string("top=WS(n=5,k=3,p=0.50) mid=ER(n=0,p=0.50) bottom=WS(n=5,k=3,p=0.50)")
    with pytest.raises(JnasError, match="WS.k"):
        WS(5, 1, 0.5)
    with pytest.raises(JnasError, match="ER.p"):
        ER(3, 1.5)
    with pytest.raises(JnasError, match="channel_ratio"):
        small_hnag(channel_ratio=(1, 2.5, 4))
    with pytest.raises(JnasError, match="stage_ratio"):
        small_hnag(stage_ratio=(1, 1))
    with pytest.raises(JnasError, match="op_probs"):
        small_hnag(op_probs=(1, 0))
    with pytest.raises(JnasError, match="top.n"):
        small_hnag(channel_ratio=(1, 2, 4, 8, 8), stage_ratio=(1,) * 5)
    with pytest.raises(JnasError, match="stages"):
        RNAGConfig((WS(10, 4, 0.5),) * 2)


def test_space_is_not_enumerable_but_samples_and_encodes():
    for space in (NAGO, RNAG):
        for call in (space.enumerate, lambda sp=space: sp.index(sp.template()), lambda sp=space: sp.from_index(0)):
            with pytest.raises(NotEnumerableError, match="not enumerated"):
                call()
    # (tests/test_space_properties.py checks sampling, mutation and crossover of both spaces)
    archs = jax.jit(NAGO.sample_batch, static_argnums=1)(jax.random.key(0), 64)
    a = np.asarray(archs)
    lo, hi = np.array([f.lo for f in NAGO.fields]), np.array([f.hi for f in NAGO.fields])
    assert a.dtype == np.int16 and np.all(a.min(0) >= lo) and np.all(a.max(0) <= hi)
    assert np.all(a.max(0) > a.min(0))  # every hyperparameter varies
    u = NAGO.unit_vector(archs)  # elementwise: batches broadcast
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    np.testing.assert_array_equal(NAGO.from_unit(u), archs)
    assert issubclass(NotEnumerableError, JnasError) and issubclass(NotEnumerableError, NotImplementedError)
    # a neighbour moves one hyperparameter by one step, clipped at the range
    nbrs, mask = NAGO.neighbours(np.array([3, 5, 12, 1, 50, 10, 2, 100], np.int16))
    kept = np.asarray(nbrs)[np.asarray(mask)]
    assert {tuple(r) for r in kept} == {
        (4, 5, 12, 1, 50, 10, 2, 100), (3, 4, 12, 1, 50, 10, 2, 100), (3, 5, 10, 1, 50, 10, 2, 100),
        (3, 5, 17, 1, 50, 10, 2, 100), (3, 5, 12, 2, 50, 10, 2, 100), (3, 5, 12, 1, 45, 10, 2, 100),
        (3, 5, 12, 1, 55, 10, 2, 100), (3, 5, 12, 1, 50, 9, 2, 100), (3, 5, 12, 1, 50, 10, 3, 100),
        (3, 5, 12, 1, 50, 10, 2, 95)}


# ----- networks -----------------------------------------------------------------------------------

def abstract_network(graphs, channels, shape=SMALL, num_classes=7):
    return nnx.eval_shape(lambda: net.NagoNetwork(graphs, channels, num_classes=num_classes, input_shape=shape,
                                                  rngs=nnx.Rngs(0)))


@pytest.mark.parametrize("seed, shape", [(0, SMALL), (2, (48, 40, 1))])
def test_component_sums_equal_the_built_network(seed, shape):
    """Analytic parameters and component-traced activation bytes equal those of the whole network."""
    cfg = small_hnag(op_probs=ALL_OPS, merge_probs=ALL_MERGES, stage_ratio=(1, 2, 1))
    g = generate(cfg, jax.random.key(seed))
    kinds = {b.nodes[i]["merge"] for c in g.cells for b in c.bottoms for i in b.nodes}
    assert len(kinds) >= 3  # several merge kinds are exercised
    for m in (1, 3):
        channels = [r * m for r in cfg.channel_ratio]
        model = abstract_network(g, channels, shape)
        assert net.count_params_at(g, channels, num_classes=7, input_shape=shape) == count_params(model)
        assert net.activation_bytes(g, cfg.channel_ratio, m, num_classes=7, input_shape=shape) == \
            activation_bytes_per_image(model, shape)


def test_build_meets_the_parameter_limit_and_is_reproducible():
    arch = np.array([4, 2, 50, 2, 60, 3, 2, 40], np.int16)
    limit = 3e4
    a = net.build(arch, num_classes=10, rngs=nnx.Rngs(0), seed=3, param_limit=limit, input_shape=SMALL)
    m = a.multiplier
    assert m >= 2 and a.channels == (m, 2 * m, 4 * m)
    n = count_params(a)
    g = generate(NAGO.config(arch), jax.random.key(3))
    assert n <= limit < net.count_params_at(g, [r * (m + 1) for r in (1, 2, 4)], num_classes=10, input_shape=SMALL)
    assert n == net.count_params_at(g, a.channels, num_classes=10, input_shape=SMALL)
    b = build_network("nago", arch, num_classes=10, rngs=nnx.Rngs(0), seed=3, param_limit=limit, input_shape=SMALL)
    sa, sb = nnx.state(a, nnx.Param), nnx.state(b, nnx.Param)
    assert jax.tree.structure(sa) == jax.tree.structure(sb)
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)))
    # another seed: another network from the same generator
    c = nnx.eval_shape(lambda: net.build(arch, num_classes=10, rngs=nnx.Rngs(0), seed=1, param_limit=limit,
                                         input_shape=SMALL))
    assert generate(NAGO.config(arch), jax.random.key(1)).signature() != g.signature()
    assert nnx.graphdef(c) != nnx.graphdef(a) and nnx.graphdef(a) == nnx.graphdef(b)
    # forward: train and eval mode, jitted
    graphdef, state = nnx.split(a)
    x = jax.random.normal(jax.random.key(0), (2, *SMALL))
    y = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
    assert y.shape == (2, 10) and bool(jnp.all(jnp.isfinite(y)))
    a.eval()
    graphdef, state = nnx.split(a)
    y_eval = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
    assert y_eval.shape == (2, 10) and not np.allclose(y, y_eval)  # BN on running statistics


def test_rnag_network_and_registry_options():
    arch = np.array([10, 4, 75, 10, 4, 75, 10, 4, 75], np.int16)
    model = nnx.eval_shape(lambda: build_network("rnag", arch, num_classes=3, rngs=nnx.Rngs(0),
                                                 param_limit=5e4, input_shape=SMALL))
    assert count_params(model) <= 5e4 and model.channels[1] == 2 * model.channels[0]
    assert abstract_forward(model, (4, *SMALL)) == (4, 3)
    with pytest.raises(JnasError, match="generator: .*fixes it to 'hnag'"):
        build_network("nago", arch, num_classes=3, rngs=nnx.Rngs(0), generator="rnag")
    with pytest.raises(JnasError, match="9 integers"):
        net.build(arch[:8], num_classes=3, rngs=nnx.Rngs(0), generator="rnag")
    with pytest.raises(JnasError, match="generator"):
        net.build(arch, num_classes=3, rngs=nnx.Rngs(0), generator="xnag")
    with pytest.raises(JnasError, match="settings"):
        net.build(arch, num_classes=3, rngs=nnx.Rngs(0), generator="rnag", stage_ratio=(1, 1, 1))


def test_build_rejects_bad_options():
    arch = np.array([3, 2, 50, 1, 50, 3, 2, 50], np.int16)
    with pytest.raises(JnasError, match="param_limit: got 100"):
        net.build(arch, num_classes=10, rngs=nnx.Rngs(0), param_limit=100, input_shape=SMALL)
    with pytest.raises(JnasError, match="input_shape"):
        net.build(arch, num_classes=10, rngs=nnx.Rngs(0), input_shape=(2, 2, 3))
    with pytest.raises(JnasError, match="num_classes"):
        net.build(arch, num_classes=0, rngs=nnx.Rngs(0))
    with pytest.raises(JnasError, match="seed"):
        net.build(arch, num_classes=10, rngs=nnx.Rngs(0), seed=1.5)


def test_merges_combine_pooled_inputs_as_documented():
    rngs = nnx.Rngs(0)
    x1 = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
    big = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
    pooled = big.reshape(2, 4, 2, 4, 2, 3).mean((2, 4))  # 2x2 average pooling
    inputs = [(3, 0), (3, 1)]
    np.testing.assert_allclose(net.Merge("sum", inputs, 3, rngs=rngs)([x1, big]), x1 + pooled, atol=1e-6)
    np.testing.assert_allclose(net.Merge("weighted_sum", inputs, 3, rngs=rngs)([x1, big]),
                               0.5 * (x1 + pooled), atol=1e-6)  # sigmoid(0) weights at init
    np.testing.assert_allclose(net.Merge("attention", inputs, 3, rngs=rngs)([x1, big]),
                               0.5 * (x1 + pooled), atol=1e-6)  # zero query: uniform attention at init
    np.testing.assert_allclose(net.Merge("concat", inputs, 3, rngs=rngs)([x1, big]),
                               jnp.concatenate([x1, pooled], -1), atol=1e-6)
    np.testing.assert_allclose(net.Merge("single", [(3, 1)], 3, rngs=rngs)([big]), pooled, atol=1e-6)
    # a query that prefers the first input
    att = net.Merge("attention", inputs, 3, rngs=rngs)
    att.query[...] = jnp.full((3,), 50.0)
    y = att([jnp.ones((1, 4, 4, 3)), -jnp.ones((1, 8, 8, 3))])
    np.testing.assert_allclose(y, jnp.ones((1, 4, 4, 3)), atol=1e-4)
    # channels that differ from the node's are projected by a 1x1 conv before summing
    proj = net.Merge("sum", [(3, 0), (5, 0)], 3, rngs=rngs)
    assert count_params(proj) == 5 * 3 == net.Merge.param_count("sum", [(3, 0), (5, 0)], 3)
    assert proj([x1, jnp.zeros((2, 4, 4, 5))]).shape == (2, 4, 4, 3)
