"""benchmarks/experiment.py --quick: the whole resumable experiment, CI-sized, into a tmp cache."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "experiment.py"
sys.path.insert(0, str(ROOT / "benchmarks"))  # as tests/test_benchmarks.py: the scripts are not a package


def run(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One full --quick run; returns (cache, results, seconds)."""
    tmp = tmp_path_factory.mktemp("experiment")
    t0 = time.perf_counter()
    run("--cache", str(tmp / "cache"), "--results", str(tmp / "results"))
    return tmp / "cache", tmp / "results", time.perf_counter() - t0


def records(results: Path) -> dict[str, dict]:
    return {r["name"]: r for r in (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))}


def test_quick_run_writes_a_json_per_planned_run_and_the_report(quick):
    cache, results, _ = quick  # its time (under a minute here) is no test: a shared runner may be slower
    listing = run("--cache", str(cache), "--results", str(results), "--list").stdout.splitlines()
    assert listing and all(line.lstrip().startswith("done") for line in listing)
    keys = {re.search(r"\b[a-z]+-[0-9a-f]{16}\b", line).group() for line in listing}
    assert len(list((results / "runs").glob("*.json"))) == len(listing) == len(keys)
    assert (results / "fig5_dose_response.png").stat().st_size > 10_000
    assert (results / "pretrain_signals.png").stat().st_size > 10_000
    md = (results / "experiment.md").read_text()
    assert "not yet run" not in md and "Holm" in md


def test_second_run_does_no_work(quick):
    cache, results, _ = quick
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    out = run("--cache", str(cache), "--results", str(results), "--parts", "pretrain,frozen,finetune,signals").stdout
    assert "executed 0 run(s)" in out
    assert {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")} == before


def test_report_from_no_runs_marks_every_part_not_yet_run(quick, tmp_path):
    cache, _, _ = quick
    run("--cache", str(cache), "--results", str(tmp_path), "--parts", "report")
    md = (tmp_path / "experiment.md").read_text()
    assert md.count("not yet run") >= 10
    assert not (tmp_path / "runs").exists()  # the report never runs anything


def test_mu_zero_leaves_the_image_encoder_at_its_init_so_its_frozen_probe_equals_scratch(quick):
    # L_inter is the only loss reaching the image encoder: with μ = 0 the encoder is the scratch one, bit for bit,
    # and the frozen probe (same seed = same decoder and batches) must give the same numbers.
    _, results, _ = quick
    recs = records(results)
    no_inter = {n.split()[-1]: r for n, r in recs.items() if n.startswith("frozen no_inter")}
    scratch = {n.split()[-1]: r for n, r in recs.items() if n.startswith("frozen scratch seed")}
    assert no_inter and no_inter.keys() == scratch.keys()
    for seed in scratch:
        assert no_inter[seed]["metrics"] == scratch[seed]["metrics"]
    simipu = {n.split()[-1]: r for n, r in recs.items() if n.startswith("frozen simipu")}
    assert any(simipu[s]["metrics"] != scratch[s]["metrics"] for s in simipu)


def test_report_means_are_the_means_of_the_run_jsons(quick):
    _, results, _ = quick
    recs = records(results)
    rmse = [r["metrics"]["rmse"] for n, r in recs.items() if n.startswith("frozen scratch seed")]
    md = (results / "experiment.md").read_text()
    frozen = md.split("frozen-encoder probe", 1)[1]
    row = next(line for line in frozen.splitlines() if line.startswith("| RMSE"))
    assert re.search(rf"\| {np.mean(rmse):.3f} \[", row)


def test_keys_depend_on_method_code_but_not_on_tests_or_docs(monkeypatch):
    import experiment
    base = experiment.Run("pretrain", "x", dict(a=1)).key
    assert experiment.Run("pretrain", "x", dict(a=1)).key == base
    assert experiment.Run("pretrain", "x", dict(a=2)).key != base
    monkeypatch.setitem(experiment.CODE, "pretrain", (*experiment.CODE["pretrain"], "simipu/stats.py"))
    assert experiment.Run("pretrain", "x", dict(a=1)).key != base
    assert not any(p.startswith(("tests", "docs", "README")) for v in experiment.CODE.values() for p in v)


def test_signals_are_measured_from_the_init_to_the_last_checkpoint(quick):
    cache, results, _ = quick
    recs = records(results)
    signals = {n: r for n, r in recs.items() if n.startswith("signals")}
    assert len(signals) == len([n for n in recs if n.startswith("pretrain")])
    for name, rec in signals.items():
        steps = [row["step"] for row in rec["rows"]]
        pre = recs[name.replace("signals", "pretrain")]
        assert steps[0] == 0 and steps[-1] == pre["summary"]["steps"] and steps == sorted(steps)
        assert all(0 <= row["inter_wrong"] <= 1 for row in rec["rows"])
        summary = json.loads((cache / pre["key"] / "summary.json").read_text())
        assert summary["heldout_signals"] == rec["rows"] and summary["steps"] == pre["summary"]["steps"]
        assert list((cache / pre["key"] / "signals").glob("events.out.tfevents.*"))  # and in TensorBoard


def test_a_part_never_runs_the_runs_it_needs_from_another_part(tmp_path):
    out = run("--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results"), "--parts", "frozen").stdout
    names = set(records(tmp_path / "results"))
    assert not any(n.startswith("pretrain") for n in names)
    assert {n for n in names if n.startswith("frozen")} == {f"frozen {e} seed {s}" for e in ("scratch", "scratch_bn")
                                                            for s in (0, 1)}
    assert "skip frozen simipu 4f/4s seed 0: needs pretrain simipu 4f/4s" in out


def test_only_runs_the_runs_named_by_one_of_its_words(tmp_path):
    """Two runners share a cache on disjoint --only words: each makes only its own runs."""
    run("--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results"), "--parts", "frozen",
        "--only", "scratch_bn")
    made = set(records(tmp_path / "results"))
    assert {n for n in made if n.startswith("frozen")} == {f"frozen scratch_bn seed {s}" for s in (0, 1)}
    assert made - {n for n in made if n.startswith("frozen")} == {"data", "scratch encoder, BN statistics of the "
                                                                  "train images"}   # what those probes need


def test_the_bn_control_changes_only_batchnorm_running_statistics(quick):
    import torch
    cache, _, _ = quick
    files = {p.parent.name: torch.load(p) for p in cache.glob("init-*/encoder.pth")}
    assert len(files) == 2
    plain, bn = sorted(files.values(), key=lambda s: float(s["bn1.running_var"].sum() != len(s["bn1.running_var"])))
    assert plain.keys() == bn.keys()
    for k in plain:
        same = torch.equal(plain[k], bn[k])
        assert same == (not k.endswith(("running_mean", "running_var", "num_batches_tracked"))), k


def test_a_done_pretraining_whose_checkpoints_left_the_cache_is_re_made_for_the_probes_that_need_it(quick, tmp_path):
    import shutil
    cache, results, _ = quick
    shutil.copytree(cache, tmp_path / "cache", symlinks=True)
    shutil.copytree(results, tmp_path / "results")
    main = records(results)["pretrain simipu 4f/4s"]
    shutil.rmtree(tmp_path / "cache" / main["key"])                  # a new machine: the cache is gone
    finetunes = [p for p in (tmp_path / "results" / "runs").glob("finetune-*.json")
                 if "simipu" in json.loads(p.read_text())["name"]]
    assert finetunes
    for p in finetunes:
        p.unlink()
    out = run("--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results"), "--parts", "finetune").stdout
    assert "re-making pretrain simipu 4f/4s" in out and "skip" not in out
    remade = records(tmp_path / "results")
    assert remade["pretrain simipu 4f/4s"] == main                   # the record the probes came from stays
    again = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs" / "remade").glob(f"{main['key']}-*.json")]
    assert len(again) == 1 and again[0]["history"] == main["history"]  # same machine: the same pre-training
    for p in finetunes:
        name = json.loads((results / "runs" / p.name).read_text())["name"]
        assert remade[name]["metrics"] == records(results)[name]["metrics"]


def test_recheck_re_runs_one_probe_here_and_leaves_its_record_alone(quick):
    cache, results, _ = quick
    before = {p.name: p.read_bytes() for p in (results / "runs").glob("*.json")}
    out = run("--cache", str(cache), "--results", str(results), "--recheck", "frozen scratch seed 0").stdout
    assert "frozen scratch seed 0: recorded on" in out and "rmse" in out
    assert "Δ +0.00000" in out.split("rmse")[1].splitlines()[0]        # same machine, same code: the same numbers
    assert {p.name: p.read_bytes() for p in (results / "runs").glob("*.json")} == before
