"""``python -m simipu.exercises strip NOTEBOOK_DIR --out OUT_DIR``: student copies without solutions."""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

SOLUTION_TAG = "solution"
STUB = "# Your code here: write the function, then run the check below.\nraise NotImplementedError\n"


def strip_solutions(src: Path, dst: Path) -> int:
    """Copy ``src`` to ``dst`` with every cell tagged ``solution`` replaced by a stub; returns the count."""
    nb = nbformat.read(src, as_version=4)
    n = 0
    for cell in nb.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            first = cell.source.splitlines()[0] if cell.source else ""
            keep = first if first.startswith("def ") else ""
            cell.source = (keep + "\n    " + STUB.replace("\n", "\n    ").rstrip()) if keep else STUB
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != SOLUTION_TAG] + ["exercise"]
            n += 1
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return n


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m simipu.exercises")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("strip", help="write student copies of the notebooks without solution cells")
    s.add_argument("notebooks", type=Path)
    s.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    for src in sorted(a.notebooks.glob("*.ipynb")):
        n = strip_solutions(src, a.out / src.name)
        print(f"{a.out / src.name}: {n} solution cell(s) removed")


if __name__ == "__main__":
    main()
