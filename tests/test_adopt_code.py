"""benchmarks/adopt_code.py: finished experiment runs are kept across a code change only when the quick plan's
results are identical under the old and the new code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import adopt_code  # noqa: E402


def _runs(loss: float, rmse: float) -> dict:
    return {("pretrain", "pretrain simipu 4f/4s"): dict(history={"loss": [9.0, loss]}, encoder={"rel": 0.5},
                                                          summary=dict(rank_param_sha256=["ab"], wall_seconds=3.0)),
            ("frozen", "frozen scratch seed 0"): dict(metrics={"rmse": rmse}, losses=[1.0], wall_seconds=7.0)}


def test_a_kind_is_adopted_when_its_results_agree_and_refused_when_they_differ():
    old_h = dict(data="d", pretrain="p0", frozen="f0", signals="s0")
    new_h = dict(data="d", pretrain="p1", frozen="f1", signals="s0")
    aliases, refused = adopt_code.decide(old_h, new_h, _runs(5.0, 4.0), _runs(5.0, 4.5))
    assert aliases == {"pretrain": {"p1": "p0"}}          # same losses and weights: the old runs count
    assert refused == {"frozen": ["frozen scratch seed 0: metrics differs"]}
    assert "data" not in aliases and "signals" not in refused   # unchanged code: nothing to decide
    slower = _runs(5.0, 4.0)
    slower[("pretrain", "pretrain simipu 4f/4s")]["summary"]["wall_seconds"] = 99.0   # timings do not count,
    slower[("pretrain", "pretrain simipu 4f/4s")]["encoder"]["samples_per_s"] = 1.0   # at any depth
    assert adopt_code.decide(old_h, new_h, _runs(5.0, 4.0), slower)[0] == {"pretrain": {"p1": "p0"},
                                                                           "frozen": {"f1": "f0"}}
    aliases, refused = adopt_code.decide(old_h, new_h, _runs(5.0, 4.0), _runs(5.1, 4.0))
    assert "pretrain" in refused and refused["pretrain"] == ["pretrain simipu 4f/4s: history differs"]


def test_a_kind_with_no_quick_run_to_compare_is_not_adopted():
    aliases, refused = adopt_code.decide({"finetune": "a"}, {"finetune": "b"}, _runs(1, 1), _runs(1, 1))
    assert not aliases and "made no run" in refused["finetune"][0]


def test_aliases_file_keeps_older_entries_and_records_each_check(tmp_path):
    path = tmp_path / "code_aliases.json"
    adopt_code.merge_aliases(path, {"pretrain": {"p1": "p0"}}, dict(old="c0", new="c1"))
    data = adopt_code.merge_aliases(path, {"pretrain": {"p2": "p0"}, "frozen": {"f2": "f0"}}, dict(old="c1", new="c2"))
    assert data["aliases"] == {"pretrain": {"p1": "p0", "p2": "p0"}, "frozen": {"f2": "f0"}}
    assert [c["new"] for c in json.loads(path.read_text())["checks"]] == ["c1", "c2"]


def test_an_unknown_revision_is_refused_in_one_line(capsys):
    assert adopt_code.main(["no-such-revision-anywhere"]) == 2
    assert capsys.readouterr().err.startswith("adopt_code: error: 'no-such-revision-anywhere' is not a commit")


@pytest.mark.slow
def test_a_neutral_change_keeps_the_runs_and_a_change_of_results_does_not(tmp_path):
    """A clone with two uncommitted edits: a comment in the pre-training code (results identical: adopted)
    and the probe's λ (the probes' numbers move: not adopted). Runs the quick plan twice (about 2 minutes)."""
    import os
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    data = clone / "simipu" / "data.py"
    data.write_text(data.read_text() + "\n# a comment changes the code hash, not a number\n")
    depth = clone / "simipu" / "depth.py"
    line = "    lam: float = 0.85                # λ\n"
    assert line in depth.read_text()
    depth.write_text(depth.read_text().replace(line, line.replace("0.85", "0.5")))
    proc = subprocess.run([sys.executable, "benchmarks/adopt_code.py", "HEAD", "--work", str(tmp_path / "work")],
                          cwd=clone, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(clone)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "frozen: not adopted" in proc.stdout and "finetune: not adopted" in proc.stdout, proc.stdout
    data = json.loads((clone / "results" / "runs" / "code_aliases.json").read_text())
    assert data["checks"][-1]["adopted"] == ["pretrain", "signals"]   # this check's; older ones may be in the file
    assert data["checks"][-1]["refused"] == ["finetune", "frozen"]
    assert data["checks"][-1]["new"].endswith("+ uncommitted changes")
    hashes = adopt_code.code_hashes(clone)   # the clone's code now hashes, for pre-training, as HEAD's did
    head = tmp_path / "head"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(head), "HEAD"], cwd=clone, check=True)
    assert hashes["pretrain"] == adopt_code.code_hashes(head)["pretrain"]
    assert hashes["frozen"] != adopt_code.code_hashes(head)["frozen"]
