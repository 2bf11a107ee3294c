"""PC-DARTS and P-DARTS: partial channels, edge normalisation, pruning, stage schedules, skip dropout and
the skip limit, the architecture warm-up, and both methods end to end on a tiny dataset.

The end-to-end runs use the NB201 supernet at 2 channels (PC-DARTS: 4, for
``K = 2``) and one cell per stage, as ``test_supernet_cli.py`` does.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import real_weights, tiny_image_npz

from jnas.errors import JnasError
from jnas.models import ops
from jnas.models.supernet import (
    DARTS_EDGE_OFFSET,
    DartsSearchCell,
    MixedOp,
    arch_weights,
    build_supernet,
    channel_shuffle,
    derive_argmax,
    edge_weight_shape,
    limit_skips,
    node_softmax,
)
from jnas.runs.supernet import load_supernet_run, run_supernet
from jnas.spaces import darts as darts_space
from jnas.spaces import get_space
from jnas.spaces import nb201 as nb201_space
from jnas.train.oneshot import search_config
from jnas.train.oneshot_methods import early_stop_reason, make_method


def _darts_ops(c, stride):
    return [ops.DARTS_OPS[name](c, stride, nnx.Rngs(0), affine=False) for name in darts_space.OPS]


# ----- PC-DARTS -----------------------------------------------------------------------------------
def test_channel_shuffle_interleaves_the_groups():
    x = jnp.arange(8.0).reshape(1, 1, 1, 8)
    # groups [0 1 2 3] [4 5 6 7] -> 0 4 1 5 2 6 3 7 (PyTorch's channel_shuffle on NCHW)
    np.testing.assert_array_equal(channel_shuffle(x, 2)[0, 0, 0], [0, 4, 1, 5, 2, 6, 3, 7])
    np.testing.assert_array_equal(channel_shuffle(x, 1), x)


def test_partial_mixed_op_with_k1_is_the_full_mixed_op():
    cands = real_weights(lambda: nnx.List(_darts_ops(4, 1)))
    full, pc = MixedOp(list(cands)), MixedOp(list(cands), partial=1)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    w = jax.random.normal(jax.random.key(1), (8,))
    want = sum(w[k] * op(x) for k, op in enumerate(cands))
    np.testing.assert_allclose(pc(x, w), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pc(x, w), full(x, w), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_mixed_op_runs_a_quarter_of_the_channels_and_shuffles(stride):
    k, c = 4, 8
    cands = real_weights(lambda: nnx.List(_darts_ops(c // k, stride)))  # ops built for C/K channels
    mixed = MixedOp(list(cands), partial=k, stride=stride)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, c))
    w = 0.3 * jax.nn.softmax(jax.random.normal(jax.random.key(1), (8,)))  # β = 0.3 times softmax(α)
    through = sum(w[i] * op(x[..., : c // k]) for i, op in enumerate(cands))
    bypass = x[..., c // k:]
    if stride == 2:
        bypass = bypass.reshape(2, 3, 2, 3, 2, c - c // k).max(axis=(2, 4))
    joined = np.concatenate([np.asarray(through), 0.3 * np.asarray(bypass)], axis=-1)
    order = np.arange(c).reshape(k, c // k).T.reshape(-1)  # output channel j*K + g reads channel g*C/K + j
    np.testing.assert_allclose(mixed(x, w), joined[..., order], rtol=1e-5, atol=1e-6)


def test_edge_normalisation_sums_to_one_over_each_nodes_inputs():
    rng = np.random.default_rng(0)
    beta = jnp.asarray(rng.normal(size=(6,)))
    b = np.asarray(node_softmax("nb201", beta))
    for j in (1, 2, 3):
        into = [e for e, (_, dst) in enumerate(nb201_space.EDGES) if dst == j]
        np.testing.assert_allclose(b[into].sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(b[into], jax.nn.softmax(beta[np.asarray(into)]), rtol=1e-6)
    beta = jnp.asarray(rng.normal(size=(2, 14)))
    b = np.asarray(node_softmax("darts", beta))
    for node, off in enumerate(DARTS_EDGE_OFFSET):
        np.testing.assert_allclose(b[:, off:off + node + 2].sum(-1), 1.0, rtol=1e-6)
    m = make_method("pc-darts", "darts")
    arch = m.init_arch(jax.random.key(0))
    assert arch.shape == (2, 14, 9)  # 8 op logits and the edge logit β
    w = np.asarray(m.edge_weights(arch, None, 0.0))
    np.testing.assert_allclose(w.sum(-1), np.asarray(node_softmax("darts", arch[..., -1])), rtol=1e-5)
    np.testing.assert_allclose(w / w.sum(-1, keepdims=True), jax.nn.softmax(arch[..., :-1], -1), rtol=1e-5)


def test_pc_darts_supernet_refuses_channels_it_cannot_split():
    with pytest.raises(JnasError, match="partial_channels.*divisor"):
        build_supernet("nb201", jnp.zeros((6, 5)), num_classes=3, rngs=nnx.Rngs(0), channels=6,
                       cells_per_stage=1, partial_channels=4)
    cell = real_weights(lambda: DartsSearchCell(8, 8, 8, reduction=True, reduction_prev=False, rngs=nnx.Rngs(0),
                                                partial=4))
    assert all(op.partial == 4 for op in cell.edges)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8))
    out = cell(x, x, jnp.full((14, 8), 0.125))
    assert out.shape == (2, 4, 4, 32)


# ----- P-DARTS ------------------------------------------------------------------------------------
def test_pdarts_stage_schedule_and_its_errors():
    m = make_method("pdarts", "darts")
    assert m.stage_plan() == [{"layers": 5}, {"layers": 11}, {"layers": 17}]
    assert m.stage_keep == (5, 3) and m.stage_rates == (0.0, 0.3, 0.6) and m.warmup_epochs == 10
    assert make_method("pdarts", "nb201").stage_plan() == [{"cells_per_stage": d} for d in (1, 3, 5)]
    two = make_method("pdarts", "nb201", depths="2,4", keep_ops="3", skip_dropout="0.1,0.2")
    assert two.stage_plan() == [{"cells_per_stage": 2}, {"cells_per_stage": 4}]
    for opts, flag in ((dict(depths="5,x"), "depths"), (dict(depths="0,3"), "depths"),
                       (dict(keep_ops="5"), "keep_ops"), (dict(keep_ops="3,5"), "keep_ops"),
                       (dict(keep_ops="8,3"), "keep_ops"), (dict(skip_dropout="0.1,1.0,0.2"), "skip_dropout"),
                       (dict(skip_dropout="0.1"), "skip_dropout"), (dict(max_skips=-1), "max_skips")):
        with pytest.raises(JnasError, match=f"--set {flag}"):
            make_method("pdarts", "darts", **opts)
    with pytest.raises(JnasError, match="--model layers"):
        run_supernet("darts", "pdarts", data="x.npz", epochs=20, out="/nonexistent", model_options={"layers": 3})


def test_pdarts_pruning_keeps_the_strongest_ops_of_each_edge():
    m = make_method("pdarts", "darts")
    rng = np.random.default_rng(0)
    arch = jnp.asarray(rng.normal(size=(2, 14, 8)), jnp.float32)
    s1 = m.next_stage(arch)
    p = np.asarray(jax.nn.softmax(arch, -1))
    assert s1.op_mask.shape == (2, 14, 8) and (s1.op_mask.sum(-1) == 5).all()
    kept_min = np.where(s1.op_mask, p, np.inf).min(-1)
    dropped_max = np.where(s1.op_mask, -np.inf, p).max(-1)
    assert (kept_min > dropped_max).all()
    # the stage's weights live on the kept ops only, and the next pruning chooses among them
    w = np.asarray(s1.edge_weights(arch, None, 0.0))
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert not w[~s1.op_mask].any()
    s2 = s1.prune(-arch, 3)  # reversed preferences: the weakest of the kept five now lead
    assert (s2.sum(-1) == 3).all() and not (s2 & ~s1.op_mask).any()
    # the next stage prunes among the ops this stage held, whatever the logits of the pruned ones
    loud = jnp.where(jnp.asarray(s1.op_mask), arch, 100.0)
    nxt = s1.next_stage(loud)
    assert nxt.stage == 2 and (nxt.op_mask.sum(-1) == 3).all() and not (nxt.op_mask & ~s1.op_mask).any()
    # keeping one op never keeps only `none` on DARTS (its cells never derive it)
    strong_none = arch.at[..., 0].set(50.0)
    one = m.prune(strong_none, 1)
    assert not one[..., 0].any() and (one.sum(-1) == 1).all()
    np.testing.assert_array_equal(one[..., 1:].argmax(-1) + 1, np.asarray(arch)[..., 1:].argmax(-1) + 1)


def test_pdarts_supernet_holds_only_the_kept_ops():
    m = make_method("pdarts", "nb201", depths="1,1", keep_ops="2", skip_dropout="0,0")
    arch = jnp.asarray(np.random.default_rng(1).normal(size=(6, 5)), jnp.float32)
    s1 = m.next_stage(arch)
    net = build_supernet("nb201", arch, num_classes=3, rngs=nnx.Rngs(0), channels=2, cells_per_stage=1,
                         **s1.structure())
    cell = net.layers[0]
    for e, edge in enumerate(cell.edges):
        assert edge.index == tuple(np.flatnonzero(s1.op_mask[e])) and len(edge.ops) == 2


def test_skip_limit_strikes_the_weakest_skips():
    skip = darts_space.OPS.index("skip_connect")
    s = np.random.default_rng(0).random((2, 14, 8)) * 0.1
    s[:, :, skip] += np.linspace(1.0, 2.0, 14)  # skips win every edge; the later edges' skips are stronger
    free = derive_argmax("darts", s)
    assert (free[0, :, 1] == skip).all()
    capped = limit_skips("darts", s, 2)
    assert (capped[0, :, 1] == skip).sum() == 2 and bool(get_space("darts").is_valid(capped))
    edges = [DARTS_EDGE_OFFSET[slot // 2] + capped[0, slot, 0] for slot in range(8) if capped[0, slot, 1] == skip]
    assert sorted(edges) == [12, 13]  # the two strongest skips survive
    np.testing.assert_array_equal(capped[1], free[1])  # the reduction cell is not limited
    nb = np.zeros((6, 5))
    nb[:, nb201_space.OPS.index("skip_connect")] = np.arange(1, 7)
    out = limit_skips("nb201", nb, 1)
    assert (out == 1).sum() == 1 and out[5] == 1 and bool(get_space("nb201").is_valid(out))
    assert limit_skips("nb201", nb, 6).tolist() == [1] * 6


def test_skip_dropout_drops_the_identity_only_and_decays():
    cands = real_weights(lambda: nnx.List(_darts_ops(4, 1)))
    skip = darts_space.OPS.index("skip_connect")
    mixed = MixedOp(list(cands), skip=skip)
    x = jax.random.normal(jax.random.key(0), (4, 6, 6, 4)) + 3.0
    w = jax.nn.one_hot(skip, 8)
    y = np.asarray(mixed(x, w, (jnp.float32(0.5), jax.random.key(1))))
    zero = y == 0
    assert 0.4 < zero.mean() < 0.6  # half the elements dropped, the rest scaled by 2
    np.testing.assert_allclose(y[~zero], 2 * np.asarray(x)[~zero], rtol=1e-6)
    np.testing.assert_allclose(mixed(x, w, (jnp.float32(0.0), jax.random.key(1))), x)
    conv = jax.nn.one_hot(darts_space.OPS.index("sep_conv_3x3"), 8)
    np.testing.assert_allclose(mixed(x, conv, (jnp.float32(0.5), jax.random.key(1))), mixed(x, conv), atol=1e-6)
    m = make_method("pdarts", "darts")
    assert m.skip_drop_rate(0.0) is None  # stage 1's rate is 0: no dropout at all
    a = jnp.zeros((2, 14, 8)) + jnp.arange(8.0)
    s2 = m.next_stage(a).next_stage(a)
    with pytest.raises(JnasError, match="3 stage"):
        s2.next_stage(a)
    assert s2.skip_drop_rate(0.0) == pytest.approx(0.6) and s2.skip_drop_rate(1.0) == pytest.approx(0.0)


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_every_argmax_method_derives_valid_architectures(space_name):
    from jnas.train.oneshot_methods import METHODS

    space = get_space(space_name)
    rng = np.random.default_rng(0)
    for name, cls in METHODS.items():
        if cls.derive != "argmax":
            continue
        m = make_method(name, space_name)
        if name == "pdarts":  # a later stage: pruned edges
            a = jnp.asarray(rng.normal(size=edge_weight_shape(space_name)), jnp.float32)
            m = m.next_stage(a).next_stage(-a)  # the last stage: pruned twice
        for _ in range(5):
            arch = jnp.asarray(3 * rng.normal(size=m.init_arch(jax.random.key(0)).shape), jnp.float32)
            a = m.derive_arch(np.asarray(m.strengths(arch)))
            assert bool(space.is_valid(a)), (name, a)
            if m.op_mask is not None:  # never an op the stage's supernet lacks
                w = np.asarray(arch_weights(space_name, a))
                assert not (w.astype(bool) & ~m.op_mask).any()


# ----- warm-up and DARTS+ ---------------------------------------------------------------------------
def test_warmup_epochs_are_checked_and_ignored_by_darts_plus():
    assert make_method("darts", "nb201").warmup_epochs == 0
    assert make_method("pc-darts", "nb201").warmup_epochs == 15
    with pytest.raises(JnasError, match="--set warmup_epochs"):
        make_method("darts", "nb201", warmup_epochs=-1)
    m = make_method("darts", "nb201", early_stop="rank", stable_epochs=2)
    frozen = [{"arch": np.ones((6, 5)).tolist(), "derived": [1, 1, 1, 3, 3, 3], "arch_frozen": True}] * 5
    assert early_stop_reason(m, frozen) is None
    assert early_stop_reason(make_method("darts", "nb201", early_stop="skip"), frozen) is None
    assert early_stop_reason(m, frozen + [dict(frozen[0], arch_frozen=False)] * 3).startswith("rank")


def test_method_config_defaults_come_between_darts_and_the_user():
    assert search_config(5, method=make_method("pc-darts", "nb201")).batch_size == 256
    assert search_config(5, method=make_method("pc-darts", "nb201")).lr == 0.1
    assert search_config(5, overrides={"batch_size": 8}, method=make_method("pc-darts", "nb201")).batch_size == 8
    assert search_config(5, method=make_method("pdarts", "nb201")).batch_size == 96
    assert search_config(5, method=make_method("darts", "nb201")).batch_size == 64


# ----- end to end ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_image_npz(tmp_path_factory.mktemp("data"))


TINY_CONFIG = {"batch_size": 8, "eval_batch_size": 16}


def test_pc_darts_search_warms_up_then_learns_and_derives_a_cell(data, tmp_path):
    rec = run_supernet("nb201", "pc-darts", data=data, epochs=2, out=tmp_path / "pc",
                       method_options={"partial_channels": 2, "warmup_epochs": 1, "arch_lr": 0.05},
                       model_options={"channels": 4, "cells_per_stage": 1}, config_overrides=TINY_CONFIG)
    h = rec["history"]
    assert h[0]["arch_frozen"] and "arch_frozen" not in h[1]
    init = make_method("pc-darts", "nb201").init_arch(jax.random.split(jax.random.key(0), 3)[1])
    np.testing.assert_allclose(h[0]["arch"], init, atol=1e-7)  # frozen in the warm-up epoch
    assert np.abs(np.asarray(h[1]["arch"]) - np.asarray(init)).max() > 1e-3  # trained after it
    assert np.asarray(rec["arch"]).shape == (6, 6)
    assert bool(get_space("nb201").is_valid(get_space("nb201").from_string(rec["derived_arch"])))
    with pytest.raises(JnasError, match="warmup_epochs.*fewer than the 2 epochs"):
        run_supernet("nb201", "pc-darts", data=data, epochs=2, out=tmp_path / "pc2",
                     model_options={"channels": 4, "cells_per_stage": 1}, config_overrides=TINY_CONFIG)


def test_pdarts_runs_its_stages_resumes_and_refuses_pruned_ops(data, tmp_path):
    opts = {"depths": "1,2", "keep_ops": "2", "skip_dropout": "0.1,0.3", "warmup_epochs": 0, "arch_lr": 0.05,
            "max_skips": 1}
    kw = dict(data=data, epochs=2, method_options=opts, model_options={"channels": 2},
              config_overrides=TINY_CONFIG)
    rec = run_supernet("nb201", "pdarts", out=tmp_path / "pd", **kw)
    assert [(h["stage"], h["epoch"]) for h in rec["history"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    st = rec["stages"]
    assert [s["model_options"]["cells_per_stage"] for s in st] == [1, 2] and st[0]["op_mask"] is None
    mask = np.asarray(st[1]["op_mask"], bool)
    want = make_method("pdarts", "nb201", **opts).prune(np.asarray(st[0]["arch"], np.float32), 2)
    np.testing.assert_array_equal(mask, want)
    space = get_space("nb201")
    derived = np.asarray(space.from_string(rec["derived_arch"]))
    assert bool(space.is_valid(derived)) and mask[np.arange(6), derived].all()
    assert (derived == nb201_space.OPS.index("skip_connect")).sum() <= 1
    # a rerun reads the finished stages back
    again = run_supernet("nb201", "pdarts", out=tmp_path / "pd", **kw)
    assert again["history"] == rec["history"] and again["stages"] == rec["stages"]
    saved = json.loads((tmp_path / "pd" / "result.json").read_text())
    assert saved["stages"][1]["op_mask"] == st[1]["op_mask"]
    ev = load_supernet_run(tmp_path / "pd")
    assert ev.evaluate(derived)["status"] == "ok"
    bad = derived.copy()
    bad[0] = int(np.flatnonzero(~mask[0])[0])
    out = ev.evaluate(bad)
    assert out["status"] == "failed" and "pruned" in out["reason"]
