"""jnas turns XLA:CPU's multi-threaded Eigen off at import (its pool wedged on vmapped searches), unless told not to."""

import os
import subprocess
import sys

SNIPPET = "import os, jnas; print(os.environ.get('XLA_FLAGS', ''))"


def _flags_after_import(**env):
    full = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JNAS_XLA_MULTI_THREAD_EIGEN")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", SNIPPET], env=full, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_import_adds_the_flag_and_keeps_the_users_flags():
    assert _flags_after_import() == "--xla_cpu_multi_thread_eigen=false"
    both = "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"
    assert _flags_after_import(XLA_FLAGS="--xla_dump_to=/tmp/x") == both


def test_a_users_own_setting_or_the_opt_out_wins():
    assert _flags_after_import(XLA_FLAGS="--xla_cpu_multi_thread_eigen=true") == "--xla_cpu_multi_thread_eigen=true"
    assert _flags_after_import(JNAS_XLA_MULTI_THREAD_EIGEN="1") == ""


def test_the_flag_reaches_the_cpu_client():
    # set before the first computation: XLA accepts the flag (an unknown flag would abort the process)
    out = subprocess.run([sys.executable, "-c", "import jnas, jax.numpy as jnp; print(float(jnp.ones(3).sum()))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "3.0"
