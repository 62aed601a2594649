"""Student copies and grading, without nbgrader (and compatible with it).

``python -m simipu.exercises strip notebooks/ --out student_notebooks/``
    writes student copies: every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region becomes
    ``raise NotImplementedError()`` (code) or ``YOUR ANSWER HERE`` (answer keys in markdown), outputs are
    cleared; cell metadata stays, so the copies remain nbgrader assignments.

``python -m simipu.exercises grade SUBMISSIONS/ --out grades.csv [--source notebooks/] [--quick]``
    executes every ``SUBMISSIONS/<student>/**/*.ipynb`` and scores each graded cell (nbgrader metadata
    ``grade: true``, ``points``) that runs without an error; a graded cell's source is first restored from
    the instructor's notebook of the same name in ``--source``, so an edited test scores nothing it should
    not. Writes one CSV row per student, notebook and graded cell, and one feedback file per student
    (``grades_feedback/<student>.md`` beside the CSV). Answer cells graded by hand are listed for the
    instructor with no automatic score.

Authoring rules (checked by :func:`strip_solutions`): solution regions sit inside function bodies, so that
a student copy runs to the end; every exercise's check cell carries nbgrader metadata with its points.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"


class AuthoringError(ValueError):
    """A source notebook breaks the authoring rules above."""


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _replace_regions(source: str, stub: str, where: str, code: bool) -> str:
    lines, out, inside, indent = source.split("\n"), [], False, ""
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise AuthoringError(f"{where}: nested {BEGIN}")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            if code and not indent:
                raise AuthoringError(f"{where}: a solution region must sit inside a function body (indented), "
                                     "or the student copy would stop at this cell")
            out.extend(indent + s for s in stub.split("\n"))
        elif stripped == END:
            if not inside:
                raise AuthoringError(f"{where}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise AuthoringError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def strip_solutions(src: Path, dst: Path) -> int:
    """Write the student copy of ``src`` to ``dst``; returns the number of solution regions removed."""
    nb = nbformat.read(src, as_version=4)
    n = 0
    for i, cell in enumerate(nb.cells):
        where = f"{src.name}, cell {i}"
        has_region = BEGIN in cell.source
        if _nbgrader(cell).get("solution"):
            if not has_region:
                raise AuthoringError(f"{where}: a solution cell without a {BEGIN} region")
            n += cell.source.count(BEGIN)
            is_code = cell.cell_type == "code"
            cell.source = _replace_regions(cell.source, CODE_STUB if is_code else TEXT_STUB, where, is_code)
        elif has_region:
            raise AuthoringError(f"{where}: a {BEGIN} region in a cell not marked as a solution "
                                 "(metadata nbgrader.solution)")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)
    return n


# ---------------------------------------------------------------------------------------------- grading

def _graded_cells(nb) -> dict:
    return {_nbgrader(c)["grade_id"]: c for c in nb.cells if _nbgrader(c).get("grade")}


def _cell_text(cell) -> str:
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif o.get("output_type") == "error":
            parts.append(f"{o.get('ename')}: {o.get('evalue')}")
    text = "".join(parts).strip()
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def grade_notebook(path: Path, source: Path | None, quick: bool, timeout: int) -> list[dict]:
    """Execute one submitted notebook; one row per graded cell: grade_id, score, max_score, status, feedback."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    rows = []
    if source is not None and source.is_file():
        reference = _graded_cells(nbformat.read(source, as_version=4))
        submitted = _graded_cells(nb)
        for gid, ref_cell in reference.items():
            if gid not in submitted:
                rows.append(dict(grade_id=gid, score=0.0, max_score=float(_nbgrader(ref_cell).get("points", 0)),
                                 status="missing", feedback="this graded cell was deleted from the notebook"))
            elif ref_cell.cell_type == "code":
                submitted[gid].source = ref_cell.source           # the instructor's test, not an edited one
    package_root = str(Path(__file__).resolve().parents[2])      # the kernel imports the grader's simipu
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    env = {"SIMIPU_GRADING": "1", "SIMIPU_QUICK": "1" if quick else os.environ.get("SIMIPU_QUICK", "0"),
           "MPLBACKEND": "Agg", "PYTHONPATH": pythonpath}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for gid, cell in _graded_cells(nb).items():
        points = float(_nbgrader(cell).get("points", 0))
        if cell.cell_type != "code":
            rows.append(dict(grade_id=gid, score="", max_score=points, status="manual",
                             feedback="graded by hand:\n" + cell.source.strip()))
            continue
        failed = any(o.get("output_type") == "error" for o in cell.outputs)
        rows.append(dict(grade_id=gid, score=0.0 if failed else points, max_score=points,
                         status="fail" if failed else "pass", feedback=_cell_text(cell)))
    return rows


def grade(submissions: Path, out: Path, source_dir: Path | None, quick: bool, timeout: int) -> list[dict]:
    """Grade every student folder of ``submissions``; write the CSV and the feedback files; return the rows."""
    students = sorted(p for p in submissions.iterdir() if p.is_dir())
    if not students:
        raise SystemExit(f"{submissions}: no student folders (expected SUBMISSIONS/<student>/*.ipynb)")
    feedback_dir = out.parent / f"{out.stem}_feedback"
    feedback_dir.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for student in students:
        lines = [f"# Feedback for {student.name}", ""]
        for path in sorted(student.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            src = source_dir / path.name if source_dir else None
            rows = grade_notebook(path, src, quick, timeout)
            got = sum(r["score"] for r in rows if r["score"] != "")
            total = sum(r["max_score"] for r in rows if r["status"] != "manual")
            lines += [f"## {path.name}: {got:g} / {total:g} points", ""]
            for r in rows:
                score = "graded by hand" if r["status"] == "manual" else f"{r['score']:g} / {r['max_score']:g}"
                lines += [f"### {r['grade_id']} ({score})", "", "```", r["feedback"] or "(no output)", "```", ""]
                all_rows.append(dict(student=student.name, notebook=path.name, **{k: r[k] for k in
                                     ("grade_id", "score", "max_score", "status")}))
        (feedback_dir / f"{student.name}.md").write_text("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["student", "notebook", "grade_id", "score", "max_score", "status"])
        writer.writeheader()
        writer.writerows(all_rows)
    return all_rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m simipu.exercises")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("strip", help="write student copies without solutions and answer keys")
    s.add_argument("notebooks", type=Path)
    s.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("grade", help="execute and score a folder of completed student notebooks")
    g.add_argument("submissions", type=Path, help="SUBMISSIONS/<student>/*.ipynb")
    g.add_argument("--out", type=Path, required=True, help="the CSV to write")
    g.add_argument("--source", type=Path, default=None,
                   help="the instructor notebooks (default: notebooks/ of the repository, when found)")
    g.add_argument("--quick", action="store_true", help="run long cells shortened (SIMIPU_QUICK=1)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    a = p.parse_args(argv)
    if a.cmd == "strip":
        notebooks = sorted(a.notebooks.glob("*.ipynb"))
        if not notebooks:
            print(f"error: {a.notebooks}: no .ipynb files", file=sys.stderr)
            raise SystemExit(2)
        try:
            for src in notebooks:
                n = strip_solutions(src, a.out / src.name)
                print(f"{a.out / src.name}: {n} solution(s) removed")
        except AuthoringError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2)
    else:
        source = a.source
        if source is None:
            candidate = Path(__file__).resolve().parents[2] / "notebooks"
            source = candidate if candidate.is_dir() else None
        rows = grade(a.submissions, a.out, source, a.quick, a.timeout)
        print(f"{a.out}: {len(rows)} rows; feedback in {a.out.parent / (a.out.stem + '_feedback')}/")


if __name__ == "__main__":
    main()
