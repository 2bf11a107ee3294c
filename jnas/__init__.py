"""jnas: neural architecture search on JAX.

Architectures are small fixed-shape integer arrays; search strategies are pure
ask/tell state machines; tabular benchmarks are jittable gathers. See
``docs/architecture.md``.
"""

__version__ = "0.1.0"
