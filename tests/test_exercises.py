"""The exercise checker tells right from wrong, and student copies lose their solutions."""
import nbformat
import numpy as np

from simipu.exercises import check
from simipu.exercises.__main__ import strip_solutions


def _cases():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(5, 3)),) for _ in range(4)]


def test_check_passes_the_reference_and_fails_a_wrong_answer(capsys):
    ref = lambda x: np.linalg.norm(x, axis=1)  # noqa: E731
    assert check(lambda x: np.sqrt((x ** 2).sum(1)), ref, _cases(), name="norm")
    assert not check(lambda x: (x ** 2).sum(1), ref, _cases(), name="norm", hint="take the square root")
    out = capsys.readouterr().out
    assert "PASS norm" in out and "FAIL norm" in out and "take the square root" in out


def test_check_reports_unimplemented_and_crashing_functions(capsys):
    def todo(x):
        raise NotImplementedError
    assert not check(todo, lambda x: x, _cases(), name="todo")
    assert not check(lambda x: x[99], lambda x: x, _cases(), name="crash")
    out = capsys.readouterr().out
    assert "not implemented" in out and "IndexError" in out


def test_strip_removes_solution_cells_but_keeps_the_signature(tmp_path):
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell("def my_fn(x):\n    return x * 2\n")
    sol.metadata["tags"] = ["solution"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), sol, nbformat.v4.new_code_cell("assert check(my_fn)")]
    src = tmp_path / "a.ipynb"
    nbformat.write(nb, src)
    assert strip_solutions(src, tmp_path / "out" / "a.ipynb") == 1
    out = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4)
    assert out.cells[1].source.startswith("def my_fn(x):") and "x * 2" not in out.cells[1].source
    assert "raise NotImplementedError" in out.cells[1].source
    assert out.cells[2].source == "assert check(my_fn)"
    exec(out.cells[1].source, {})  # the stub is valid Python
