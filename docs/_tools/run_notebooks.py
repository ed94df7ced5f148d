"""Run every notebook in docs/notebooks/ top to bottom, as CI does (``nox -s notebooks``).

Each runs in a fresh kernel of this interpreter with nbclient, against the embedded local
endpoint (no AWS account, no network beyond loopback). The first cell that raises fails
the run, naming the notebook and the cell. Outputs are discarded: the notebooks are
stored without them (``tests/test_docs.py`` checks that).

Usage: ``python docs/_tools/run_notebooks.py [--save DIR] [NAME.ipynb ...]`` (``--save``
writes the executed notebooks, with their outputs, to DIR for a look).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 120  # seconds; the slowest cell takes about two


def run(path: Path, save: Path | None = None) -> float:
    """Execute ``path`` in a fresh kernel; the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="smclient-nb-") as tmp:
        # A kernel of this very interpreter (not whatever "python3" kernel the machine has
        # installed), talking over Unix sockets rather than TCP.
        spec = Path(tmp, "kernels", "smclient-docs")
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec.joinpath("kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "smclient docs", "language": "python"})
        )
        kernel = KernelManager(
            kernel_name="smclient-docs",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
            transport="ipc",
            ip=f"{tmp}/kernel",
        )
        client = nbclient.NotebookClient(
            notebook,
            km=kernel,
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(path.parent)}},
        )
        start = time.perf_counter()
        try:
            client.execute()
        finally:
            if kernel.has_kernel:  # nbclient leaves a kernel it was handed running
                kernel.shutdown_kernel(now=False)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                nbformat.write(notebook, save / path.name)
        return time.perf_counter() - start


def main(argv: list[str]) -> int:
    save = None
    if argv[:1] == ["--save"]:
        save, argv = Path(argv[1]), argv[2:]
    paths = [NOTEBOOKS / name for name in argv] or sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        print("no notebooks found in", NOTEBOOKS, file=sys.stderr)
        return 1
    failed = 0
    total = 0.0
    for path in paths:
        try:
            seconds = run(path, save)
        except nbclient.exceptions.CellExecutionError as err:
            failed += 1
            print(f"FAILED {path.name}:\n{err}", file=sys.stderr)
            continue
        total += seconds
        print(f"ok     {path.name} ({seconds:.1f} s)")
    print(f"{len(paths) - failed} passed, {failed} failed ({total:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
