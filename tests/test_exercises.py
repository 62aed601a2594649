"""The exercise checker: feedback on wrong answers, 'not implemented' that lets a notebook go on, student
copies without solutions, and grading of a folder of submissions."""
import csv
import time

import nbformat
import numpy as np
import pytest

from exercise_helpers import fails
from simipu.exercises import ExerciseFailed, check, difference
from simipu.exercises.__main__ import AuthoringError, main, strip_solutions


def _cases():
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(5, 3)),) for _ in range(4)]


def _norm(x):
    return np.linalg.norm(x, axis=1)


def test_check_passes_the_reference_and_fails_a_wrong_answer_with_expected_and_got(capsys):
    assert check(lambda x: np.sqrt((x ** 2).sum(1)), _norm, _cases(), name="norm")
    message = fails(lambda fn: check(fn, _norm, _cases(), name="norm"), lambda x: (x ** 2).sum(1) + 1,
                    "FAIL norm", "case 1 of 4", "x: ndarray (5, 3) float64", "first at index (0,)", "expected")
    assert "PASS norm" in capsys.readouterr().out and "got" in message


def test_check_names_a_square_a_transpose_and_a_missing_factor():
    fails(lambda fn: check(fn, _norm, _cases(), name="n"), lambda x: (x ** 2).sum(1), "square root is missing")
    fails(lambda fn: check(fn, lambda x: x.T @ x, _cases(), name="n"), lambda x: 2 * x.T @ x, "2 times")
    fails(lambda fn: check(fn, lambda x: x[:2], _cases(), name="n"), lambda x: x[:2].T, "transpose")


def test_check_shows_the_shape_when_it_differs():
    fails(lambda fn: check(fn, _norm, _cases(), name="n"), lambda x: x, "expected shape (5,), got shape (5, 3)")


def test_check_prefers_the_hint_of_a_recognised_planted_mistake():
    def check_norm(fn):
        return check(fn, _norm, _cases(), name="n", hint="generic",
                     mistakes=[("you summed absolute values (L1)", lambda x: np.abs(x).sum(1))])
    fails(check_norm, lambda x: np.abs(x).sum(1), "L1")
    message = fails(check_norm, lambda x: x.max(1), "generic")
    assert "L1" not in message


def test_unimplemented_exercise_reports_and_goes_on_but_fails_when_grading(capsys, monkeypatch):
    def todo(x):
        raise NotImplementedError()
    verdict = check(todo, _norm, _cases(), name="todo")
    assert not verdict and "not implemented" in capsys.readouterr().out
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(ExerciseFailed, match="not implemented"):
        check(todo, _norm, _cases(), name="todo")


def test_crash_is_reported_with_the_case_that_raised():
    fails(lambda fn: check(fn, _norm, _cases(), name="crash"), lambda x: x[99], "IndexError", "case 1")


def test_student_function_gets_copies_and_cannot_corrupt_the_reference_inputs():
    def destructive(x):
        out = np.linalg.norm(x, axis=1)
        x[:] = 0
        return out
    assert check(destructive, _norm, _cases(), name="copies")


def test_a_function_that_hangs_is_stopped_at_the_time_limit():
    t0 = time.perf_counter()
    fails(lambda fn: check(fn, _norm, _cases(), name="slow", time_limit=0.5), lambda x: time.sleep(30),
          "more than 0 s"[:9])
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("answer", ["0.5", None, [[1, 2], [3]], {"a": 1}])
def test_an_answer_of_the_wrong_kind_fails_with_a_message_not_a_crash(answer):
    message = fails(lambda fn: check(fn, _norm, _cases(), name="kind"), lambda x: answer, "FAIL kind", "case 1")
    assert "Traceback" not in message


def test_difference_compares_nested_tuples_and_dicts():
    assert difference((np.ones(2), {"a": 1}), (np.ones(2), {"a": 1}), 1e-9) is None
    assert "item 1" in difference((np.ones(2), 2.0), (np.ones(2), 3.0), 1e-9)
    assert "['a']" in difference({"a": 1.0}, {"a": 2.0}, 1e-9)


def _notebook(solution: str, markdown_key: bool = True):
    nb = nbformat.v4.new_notebook()
    sol = nbformat.v4.new_code_cell(solution)
    sol.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "ex1-solution",
                                "schema_version": 3, "task": False}
    test = nbformat.v4.new_code_cell("from simipu.exercises import check\nimport numpy as np\n"
                                     "check(my_double, lambda x: 2 * x, [(np.arange(3.0),)], name='double')")
    test.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True, "grade_id": "ex1", "points": 2,
                                 "schema_version": 3, "task": False}
    cells = [nbformat.v4.new_markdown_cell("# t"), sol, test]
    if markdown_key:
        key = nbformat.v4.new_markdown_cell("**Your answer:**\n\n### BEGIN SOLUTION\nThe key.\n### END SOLUTION")
        key.metadata["nbgrader"] = {"solution": True, "grade": True, "locked": False, "grade_id": "ex1-why",
                                    "points": 1, "schema_version": 3, "task": False}
        cells.append(key)
    nb.cells = cells
    return nb


SOLVED = 'def my_double(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n'


def test_strip_replaces_solution_regions_keeps_scaffolding_and_removes_answer_keys(tmp_path):
    src = tmp_path / "a.ipynb"
    nb = _notebook(SOLVED)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="old output")]
    nbformat.write(nb, src)
    assert strip_solutions(src, tmp_path / "out" / "a.ipynb") == 2
    out = nbformat.read(tmp_path / "out" / "a.ipynb", as_version=4)
    code = out.cells[1].source
    assert code.startswith('def my_double(x):\n    """Twice x."""') and "2 * x" not in code
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()" in code and not out.cells[1].outputs
    assert "The key" not in out.cells[3].source and "YOUR ANSWER HERE" in out.cells[3].source
    assert out.cells[2].metadata["nbgrader"]["points"] == 2           # still an nbgrader assignment
    namespace = {}
    exec(code, namespace)
    with pytest.raises(NotImplementedError):
        namespace["my_double"](1)


def test_strip_refuses_a_solution_region_outside_a_function(tmp_path):
    src = tmp_path / "a.ipynb"
    nbformat.write(_notebook("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"), src)
    with pytest.raises(AuthoringError, match="inside a function body"):
        strip_solutions(src, tmp_path / "out.ipynb")


def test_strip_command_exits_2_on_an_empty_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["strip", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "no .ipynb" in capsys.readouterr().err


@pytest.mark.slow
def test_grade_scores_solved_unsolved_and_tampered_submissions(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    nbformat.write(_notebook(SOLVED), source / "hw.ipynb")
    subs = tmp_path / "submissions"
    strip_solutions(source / "hw.ipynb", subs / "ann" / "hw.ipynb")                 # handed in unsolved
    (subs / "bob").mkdir()
    (subs / "cem").mkdir()
    nbformat.write(_notebook(SOLVED), subs / "bob" / "hw.ipynb")                      # solved
    tampered = _notebook('def my_double(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n')
    tampered.cells[2].source = "print('PASS double')"                                 # an edited test cell
    nbformat.write(tampered, subs / "cem" / "hw.ipynb")
    main(["grade", str(subs), "--out", str(tmp_path / "grades.csv"), "--source", str(source), "--timeout", "120"])
    rows = {(r["student"], r["grade_id"]): r for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    assert rows["ann", "ex1"]["score"] == "0.0" and rows["ann", "ex1"]["status"] == "fail"
    assert rows["bob", "ex1"]["score"] == "2.0" and rows["bob", "ex1"]["status"] == "pass"
    assert rows["cem", "ex1"]["score"] == "0.0"                                       # the instructor's test ran
    assert rows["bob", "ex1-why"]["status"] == "manual"
    ann = (tmp_path / "grades_feedback" / "ann.md").read_text()
    assert "not implemented" in ann and "0 / 2 points" in ann
    assert "PASS double" in (tmp_path / "grades_feedback" / "bob.md").read_text()


def test_all_zero_output_is_named_and_index_outputs_get_no_factor_hint():
    ref = lambda x: np.argsort(x[:, 0])  # noqa: E731
    fails(lambda fn: check(fn, _norm, _cases(), name="z"), lambda x: np.zeros(len(x)), "all zeros")
    message = fails(lambda fn: check(fn, ref, _cases(), name="idx", hint="generic"), lambda x: 2 * ref(x), "generic")
    assert "times the expected" not in message
    fails(lambda fn: check(fn, ref, _cases(), name="idx"), lambda x: ref(x)[::-1], "wrong order")
