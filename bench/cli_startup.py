"""Start-up of a short search: the README's first command in a fresh process, without and with the
persistent compilation cache that `jnas search` keeps in the user cache.

Runs ``jnas search --benchmark nbgraph/cora --strategy re --budget 200 --seeds 100`` three times, each in a
new Python process with ``XDG_CACHE_HOME`` pointing at an empty temporary folder: the first process
compiles and fills the cache, the second and third find every program there. Also times a process that
only imports jax and jnas (the floor no cache can remove). Prints wall times, the search's own
``wall_seconds`` (summary.json: compile + run) and the ratio first / cached, and writes
``bench/results/cli_startup.json``.

    python bench/cli_startup.py [--benchmark nbgraph/cora] [--strategy re] [--budget 200] [--seeds 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import summary as machine_summary


def run(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="nbgraph/cora")
    ap.add_argument("--strategy", default="re")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "cli_startup.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JNAS_NO_COMPILE_CACHE")}
        env["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        floor = run([sys.executable, "-c", "import jax, jax.numpy; import jnas.cli, jnas.runs"], env)
        for i, label in enumerate(("first (empty cache)", "second (cached)", "third (cached)")):
            out = Path(tmp) / f"run{i}"
            wall = run([sys.executable, "-m", "jnas.cli", "search", "--benchmark", args.benchmark, "--strategy",
                        args.strategy, "--budget", str(args.budget), "--seeds", str(args.seeds), "--out", str(out),
                        "--no-progress"], env)
            search = json.loads((out / "summary.json").read_text())["wall_seconds"]
            rows.append({"process": label, "wall_seconds": wall, "search_wall_seconds": search})
    print(f"import jax + jnas: {floor:.2f} s")
    print(f"{'process':22} {'wall s':>7} {'search s':>9}")
    for r in rows:
        print(f"{r['process']:22} {r['wall_seconds']:7.2f} {r['search_wall_seconds']:9.2f}")
    cached = min(r["wall_seconds"] for r in rows[1:])
    print(f"first / cached wall: {rows[0]['wall_seconds'] / cached:.2f}x; "
          f"search part: {rows[0]['search_wall_seconds'] / min(r['search_wall_seconds'] for r in rows[1:]):.2f}x")
    record = {"date": time.strftime("%Y-%m-%d"), "machine": machine_summary(),
              "load_average_start": os.getloadavg()[0], "command": vars(args), "import_seconds": floor,
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
