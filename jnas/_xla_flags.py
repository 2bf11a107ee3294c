"""XLA:CPU flags jnas sets before JAX creates its CPU client.

``--xla_cpu_multi_thread_eigen=false``: on a 2-core machine XLA:CPU's Eigen thread pool was seen to
wedge on jnas's vmapped model-based searches (``bench/bo.py``, 2026-12-06: ``bo`` at 150 queries x
10 seeds never returned; every pool worker parked waiting for work, the main thread waiting on the
result). Other projects report the same wedge on vmap graphs and the same cure. The flag costs
nothing measurable on that run (63.3 s with it, 63.9 s without). ``JNAS_XLA_MULTI_THREAD_EIGEN=1``
keeps XLA's default; a ``xla_cpu_multi_thread_eigen`` already in ``XLA_FLAGS`` is left as it is.
The flag only takes effect if jnas is imported before the first JAX computation.
"""

import os

FLAG = "--xla_cpu_multi_thread_eigen=false"


def apply() -> None:
    """Add :data:`FLAG` to ``XLA_FLAGS`` unless the user opted out or set it already."""
    if os.environ.get("JNAS_XLA_MULTI_THREAD_EIGEN") == "1":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
