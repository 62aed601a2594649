"""The notebooks are nbgrader assignments: nbgrader's own preprocessors accept them and make the same student copy.

nbgrader is in the dev extra (the README's test command installs it); the test skips only where someone
installed simipu without it.
"""
from pathlib import Path

import nbformat
import pytest

from simipu.exercises.__main__ import strip_solutions

nbgrader = pytest.importorskip("nbgrader", reason="nbgrader is not installed (pip install nbgrader)")
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_nbgrader_generate_assignment_steps_accept_the_notebook_and_agree_with_strip(source, tmp_path):
    from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput,
                                        ClearSolutions, ComputeChecksums, LockCells)
    nb, resources = nbformat.read(source, as_version=4), {}
    for step in (CheckCellMetadata(), ClearSolutions(), ClearOutput(), LockCells(), ComputeChecksums(),
                 ClearHiddenTests(), ClearMarkScheme()):
        nb, resources = step.preprocess(nb, resources)
    strip_solutions(source, tmp_path / source.name)
    ours = nbformat.read(tmp_path / source.name, as_version=4)
    assert [c.source for c in ours.cells] == [c.source for c in nb.cells]
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded and all(c.metadata["nbgrader"]["points"] > 0 for c in graded)
