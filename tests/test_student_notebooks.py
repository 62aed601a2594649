"""A student's first contact: strip the notebooks, open each copy from its own folder, run all cells.

Every cell must run (quick mode), every exercise must say "not implemented" and let the notebook go on, plotly
figures must carry both the mimetype JupyterLab/VS Code draw and an offline HTML rendering (plotly.js once per
notebook), and Open3D must print no web-visualiser banner. The instructor notebooks themselves run in the nbval
part of the suite, where every check must PASS.
"""
import os
from pathlib import Path

import nbformat
import pytest

from simipu.exercises.__main__ import strip_solutions

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _texts(cell):
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            yield o.text
        elif o.output_type == "error":
            yield f"{o.ename}: {o.evalue}"
        elif o.output_type in ("display_data", "execute_result"):
            yield o.data.get("text/plain", "")


def _graded_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """The printed output of each graded check cell (at least two per notebook)."""
    graded = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert len(graded) >= 2
    return ["".join(_texts(cell)) for cell in graded]


def _run_from(folder: Path, nb: nbformat.NotebookNode, monkeypatch) -> None:
    """Execute ``nb`` in place with ``folder`` as its working directory, quick mode, as a student's kernel."""
    from nbclient import NotebookClient

    for k, v in dict(SIMIPU_QUICK="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONHASHSEED="0",
                     PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("SIMIPU_GRADING", raising=False)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_student_copy_runs_to_the_end_and_reports_unsolved_exercises(source, tmp_path, monkeypatch):
    folder = tmp_path / "student_notebooks"
    copy = folder / source.name
    assert strip_solutions(source, copy) >= 2
    nb = nbformat.read(copy, as_version=4)
    _run_from(folder, nb, monkeypatch)

    for out in _graded_outputs(nb):
        assert out.startswith("not implemented:"), out
    text = "".join(t for c in nb.cells if c.cell_type == "code" for t in _texts(c))
    assert "WebRTC" not in text and "WebVisualizer" not in text
    assert f"data: {REPO / 'data_samples'}" in text          # found from a folder outside the repository
    html = [o.data["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.output_type in ("display_data", "execute_result") and "text/html" in o.data]
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if o.output_type in ("display_data", "execute_result") and "application/vnd.plotly.v1+json" in o.data]
    if figures:
        from simipu.notebook import static_images_available
        assert all("text/html" in o.data for o in figures)           # classic Notebook, VS Code, HTML export
        if static_images_available():                                  # kaleido + Chromium: a PNG where no JS runs
            assert all(o.data.get("image/png", "").startswith("iVBORw0KGgo") for o in figures)
        assert sum(h.count("plotly.js v") for h in html) == 1        # plotly.js embedded once, no CDN needed
    if source.name.startswith("05"):
        assert list((REPO / "runs" / "notebooks" / "05").glob("matched_*.ply"))


@pytest.mark.slow
def test_grading_a_real_notebook_scores_the_solved_copy_fully_and_the_stripped_copy_zero(tmp_path, monkeypatch):
    import csv
    import shutil

    from simipu.exercises.__main__ import main

    source = REPO / "notebooks" / "04_hungarian_matching.ipynb"
    subs = tmp_path / "submissions"
    strip_solutions(source, subs / "unsolved" / source.name)
    (subs / "solved").mkdir()
    shutil.copy(source, subs / "solved" / source.name)              # the instructor's solutions
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    main(["grade", str(subs), "--out", str(tmp_path / "grades.csv"), "--source", str(REPO / "notebooks"), "--quick"])
    rows = list(csv.DictReader(open(tmp_path / "grades.csv")))
    auto = [r for r in rows if r["status"] != "manual"]
    assert {r["grade_id"] for r in auto} == {"nb04-ex1", "nb04-ex2", "nb04-ex3"}
    assert all(r["status"] == "pass" and r["score"] == r["max_score"] for r in auto if r["student"] == "solved")
    assert all(r["status"] == "fail" and float(r["score"]) == 0 for r in auto if r["student"] == "unsolved")
    assert "not implemented" in (tmp_path / "grades_feedback" / "unsolved.md").read_text()


def _solve_like_a_student(copy: nbformat.NotebookNode, source: nbformat.NotebookNode) -> int:
    """Type the instructor's solution into each stub of a student copy (the region's code, without the
    BEGIN/END markers), as a student who solved every exercise would. Returns how many cells were solved."""
    solved = 0
    assert len(copy.cells) == len(source.cells)
    for mine, theirs in zip(copy.cells, source.cells):
        if mine.cell_type == "code" and "raise NotImplementedError()" in mine.source:
            mine.source = "\n".join(line for line in theirs.source.splitlines()
                                    if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
            solved += 1
    return solved


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_a_student_copy_whose_exercises_are_solved_reports_pass_for_each(source, tmp_path, monkeypatch):
    folder = tmp_path / "student_notebooks"
    copy = folder / source.name
    strip_solutions(source, copy)
    nb = nbformat.read(copy, as_version=4)
    assert _solve_like_a_student(nb, nbformat.read(source, as_version=4)) >= 1
    _run_from(folder, nb, monkeypatch)
    for out in _graded_outputs(nb):
        assert out.startswith("PASS "), out
