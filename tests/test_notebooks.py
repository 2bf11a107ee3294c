"""The notebooks in ``notebooks/`` run top to bottom, headless, with small sizes.

Each notebook opens with a code cell tagged ``parameters`` (papermill's convention). A test puts a cell tagged
``injected-parameters`` right after it that sets small sizes, ``INSTALL = False`` (the jnas under test is
installed already) and ``OUT`` in a temporary folder, then runs every cell in a fresh kernel of this very
Python (nbclient): an error in any cell fails the test with that cell's traceback. The kernel is this
interpreter through a kernelspec written for the test, whatever kernelspecs the machine has.
"""

import ast
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

#: per notebook, the sizes a CI run uses (every name must be one its parameters cell sets)
SMALL = {
    "quickstart": {"SEEDS": 20, "BUDGET": 20, "NB201_SEEDS": 20, "NB201_BUDGET": 20},
    "scoring_at_scale": {"N_TRAIN": 200, "HIDDEN": 16, "STEPS": 50, "N_NB101": 2000, "BLOCK": 1000, "CHUNK": 512},
    "oneshot_supernet": {"METHOD": "darts", "EPOCHS": 1, "CHANNELS": 4, "CELLS_PER_STAGE": 1, "BATCH_SIZE": 64,
                         "DATASET": "cifar10_subset", "TRAIN_IMAGES": 256},
    "benchmarking_strategies": {"STRATEGIES": ["rs", "re"], "BUDGET": 20, "SEEDS": 20},
}
#: what every notebook's parameters cell sets, and its value as stored (the checkout install)
COMMON = {"INSTALL": True, "REPO_URL": "", "EXTRAS": "auto", "DATA_DIR": ""}


def load(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def parameters_cell(nb) -> int:
    """Index of the notebook's cell tagged ``parameters`` (there must be exactly one, its first code cell)."""
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"cells tagged 'parameters': {tagged}"
    assert nb.cells[tagged[0]].cell_type == "code"
    assert tagged[0] == min(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    return tagged[0]


def assigned(source: str) -> dict:
    """``{name: value}`` of the plain ``NAME = literal`` lines of a cell."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_every_notebook_has_small_sizes_here():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_is_stored_without_outputs_and_opens_with_its_parameters(name):
    nb = load(name)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "clear the outputs before committing"
    params = assigned(nb.cells[parameters_cell(nb)].source)
    assert {k: params.get(k) for k in COMMON} == COMMON
    assert set(SMALL[name]) <= set(params), f"not set in the parameters cell: {set(SMALL[name]) - set(params)}"
    assert "OUT" in params


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A ``python3`` kernelspec that starts this interpreter, first on the Jupyter path; no user-level files."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (jnas tests)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JNAS_TFDS_DIR", str(tmp_path / "tfds"))  # array datasets are written here, not ~/.cache
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the kernel works in another folder: a relative $JNAS_DATA_DIR (CI's ../shared/data) must not go astray
    data = Path(os.environ["JNAS_DATA_DIR"]).resolve()
    assert (data / "nb201_accuracies.csv.gz").is_file(), f"no NB201 tables in {data}: the notebooks would fetch them"
    monkeypatch.setenv("JNAS_DATA_DIR", str(data))
    return tmp_path


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_top_to_bottom_with_small_sizes(name, kernel_env):
    nb = load(name)
    small = {**SMALL[name], "INSTALL": False, "DATA_DIR": os.environ["JNAS_DATA_DIR"],
             "OUT": str(kernel_env / "runs")}
    source = "\n".join(f"{k} = {v!r}" for k, v in small.items())
    source += f"\nimport sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix  # the kernel is this Python"
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(parameters_cell(nb) + 1, injected)
    work = kernel_env / "work"  # the kernel's working folder: nothing is written into the checkout
    work.mkdir()
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(work)}})
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"notebooks/{name}.ipynb: {e}", pytrace=False)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in ran), "every code cell ran"
    assert not list(work.iterdir()), f"written outside OUT: {list(work.iterdir())}"
