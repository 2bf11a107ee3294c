"""Seeds sharded over devices: a run on 4 (forced host) devices equals the 1-device run seed by seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jnas.benchmarks import get_benchmark
    from jnas.runs.runner import run_tabular
    from jnas.runs.search import search
    from jnas.strategies import make_strategy
    assert len(jax.local_devices()) == 4, jax.local_devices()
    bench = get_benchmark("nb201/cifar10")
    out = {}
    for name, opts in (("rs", {}), ("re", {"population_size": 10, "sample_size": 3}), ("tpe", {})):
        s = make_strategy(name, bench.space, 30, **opts)
        one = run_tabular(s, bench, 7, devices=1, chunk=7)
        four = run_tabular(s, bench, 7, devices=4, chunk=7)
        groups = run_tabular(s, bench, 7, devices=4, chunk=3)
        out[name] = [bool(np.array_equal(one.rows, four.rows)), bool(np.array_equal(one.values, four.values)),
                     bool(np.array_equal(one.rows, groups.rows)), one.devices, four.devices, groups.devices]
    from jnas.predictors.base import score_in_chunks
    from jnas.predictors.mlp import MLPEnsemble
    X = jax.random.normal(jax.random.key(0), (1001, 12))
    m = MLPEnsemble(members=2, layers=2, width=16, steps=5)
    params = m.fit(jax.random.key(1), X[:50], X[:50, 0])
    mean4, var4 = score_in_chunks(m.predict, params, X, chunk=64)
    with jax.default_device(jax.local_devices()[0]):
        mean1, var1 = jax.jit(lambda p, x: score_in_chunks(m.predict, p, x, chunk=64))(params, X)
    out["scores"] = [bool(np.allclose(mean4, mean1, rtol=1e-5, atol=1e-6)), len(mean4.sharding.device_set)
                     if hasattr(mean4, "sharding") else 0]
    res = search("nb201/cifar10", "re", 20, seeds=6, out=sys.argv[1])
    out["summary_devices"] = json.load(open(sys.argv[1] + "/summary.json"))["devices"]
    print(json.dumps(out))
""")


def test_a_sharded_run_equals_the_unsharded_one_seed_by_seed(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("rs", "re", "tpe"):
        assert out[name] == [True, True, True, 1, 4, 3], (name, out[name])
    assert out["summary_devices"] == 4
    assert out["scores"][0], out["scores"]


def test_devices_out_of_range_is_a_one_line_error():
    from jnas.errors import JnasError
    from jnas.runs.runner import seed_mesh

    with pytest.raises(JnasError, match=r"devices: got 0, expected an integer in \[1, 1\]"):
        seed_mesh(0)
