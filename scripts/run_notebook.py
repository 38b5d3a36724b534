"""Executes one notebook headless, cell by cell, and fails on the first cell that fails.

The evcxr kernel reports only compile errors as errors: a cell that fails through `?` prints the
error to stderr and a panic prints its message to stderr, and both still reply "ok", so a plain
`jupyter nbconvert --execute` runs on and exits 0. Here a cell fails when it has an error output
or writes anything to stderr (doublewin's progress lines and warnings go to stdout; a notebook
that wants to show an error prints it). On failure the partly executed notebook is still
written, the cell and what it printed are shown, and the exit status is 1. evcxr may send a
cell's stderr after it reported the cell done, where nbclient no longer attributes it to the cell:
after each cell the runner waits briefly for such late output and adds it to the cell.
With --html the executed notebook is also exported to one self-contained HTML page (figures are
inline SVG), the page scripts/check_html.py opens in Chromium.

usage: run_notebook.py NOTEBOOK OUT.ipynb [--html OUT.html] [--kernel doublewin] [--timeout 3600]
"""
import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbclient.util import run_sync

LATE_OUTPUT_SECONDS = 0.5


def stderr_text(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr")


def error_text(cell):
    return "\n".join(f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.get("output_type") == "error")


def collect_late_output(client, cell):
    """Adds the stream and error messages that arrive within LATE_OUTPUT_SECONDS to `cell`."""
    end = time.time() + LATE_OUTPUT_SECONDS
    get = run_sync(client.kc.iopub_channel.get_msg)
    while (left := end - time.time()) > 0:
        try:
            msg = get(timeout=left)
        except Exception:  # queue.Empty: nothing more arrived
            return
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            cell.outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))
        elif kind == "error":
            cell.outputs.append(nbformat.v4.new_output("error", ename=content["ename"], evalue=content["evalue"], traceback=content["traceback"]))


def export_html(nb, path):
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--kernel", default="doublewin")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--html", type=Path, help="also export the executed notebook to this HTML file")
    args = ap.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        nb, kernel_name=args.kernel, timeout=args.timeout, resources={"metadata": {"path": str(args.notebook.parent.resolve())}}
    )
    name = args.notebook.name
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    failure = None
    with client.setup_kernel():
        for n, i in enumerate(code, 1):
            cell = nb.cells[i]
            t0 = time.time()
            try:
                client.execute_cell(cell, i)
            except CellExecutionError:
                pass
            collect_late_output(client, cell)
            problem = error_text(cell) or stderr_text(cell)
            if problem:
                failure = (n, cell, problem)
                break
            print(f"[notebooks] {name}: cell {n}/{len(code)} ok in {time.time() - t0:.1f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(args.out)
    if args.html:
        export_html(nb, args.html)
    if failure:
        n, cell, problem = failure
        print(f"[notebooks] {name}: cell {n}/{len(code)} FAILED:\n--- cell ---\n{cell.source}\n--- output ---\n{problem.strip()}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
