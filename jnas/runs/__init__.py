"""Running strategies against evaluators: scan/vmap and Python-loop runners, result files, plots."""

from jnas.runs.results import SearchResult, load_result, summarise
from jnas.runs.runner import RunRecord, run_loop, run_tabular, seed_keys
from jnas.runs.search import search

__all__ = ["RunRecord", "SearchResult", "load_result", "run_loop", "run_tabular", "search", "seed_keys", "summarise"]
