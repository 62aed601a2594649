"""benchmarks/depth_experiment.py --quick: the whole experiment's code path, CI-sized, into tmp_path."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "depth_experiment.py"
ROWS = ("scratch (random init)", "SimIPU (Hungarian, λ=1, μ=1)", "greedy matching", "w/o intra (λ=0, μ=1)",
        "w/o inter (λ=1, μ=0)")
DIAGNOSTIC_ROWS = ("SimIPU, 4× pre-training steps", "SimIPU, image and head lr 0.003")
PM = re.compile(r"^(-?\d+\.\d+) ± (\d+\.\d+)$")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """Run the script once with --quick; returns its output folder."""
    tmp = tmp_path_factory.mktemp("depth_experiment")
    out = tmp / "results"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--work", str(tmp / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def table_rows(md: str, section: str = "## Table 3") -> dict[str, list[str]]:
    """Rows of the first table of a markdown section: label -> cells."""
    block = md.split(section, 1)[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
    return {r[0]: r[1:] for r in rows}


def test_quick_run_writes_a_table_row_per_initialisation_with_seven_finite_metrics(quick_run):
    md = (quick_run / "depth_probe.md").read_text()
    rows = table_rows(md)
    assert set(rows) == set(ROWS)
    diagnostic = table_rows(md, "## Diagnostic runs")
    assert set(diagnostic) == set(DIAGNOSTIC_ROWS)
    for label, cells in {**rows, **diagnostic}.items():
        assert len(cells) == 7, label
        for cell in cells:
            m = PM.match(cell)
            assert m, f"{label}: '{cell}' is not 'mean ± std'"
            assert all(math.isfinite(float(x)) for x in m.groups())


def test_markdown_table_is_the_mean_over_seeds_of_the_json_runs(quick_run):
    result = json.loads((quick_run / "depth_probe.json").read_text())
    md = (quick_run / "depth_probe.md").read_text()
    rows = {**table_rows(md), **table_rows(md, "## Diagnostic runs")}
    metrics = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
    labels = dict(zip(("scratch", "simipu", "greedy", "no_intra", "no_inter", "simipu_4x", "simipu_lr003"),
                      ROWS + DIAGNOSTIC_ROWS))
    for name, label in labels.items():
        runs = [p for p in result["probes"] if p["init"] == name]
        assert len(runs) == len(result["plan"]["seeds"]) >= 1
        for k, cell in zip(metrics, rows[label]):
            mean = sum(p["metrics"][k] for p in runs) / len(runs)
            assert float(PM.match(cell).group(1)) == pytest.approx(mean, abs=6e-4)


def test_quick_run_records_command_machine_and_every_pretraining(quick_run):
    result = json.loads((quick_run / "depth_probe.json").read_text())
    md = (quick_run / "depth_probe.md").read_text()
    assert "--quick" in result["command"] and result["command"] in md
    assert result["wall_seconds"] > 0 and result["machine"]["cores"] >= 1 and result["machine"]["torch"]
    assert set(result["pretrain"]) == {"simipu", "greedy", "no_intra", "no_inter", "simipu_4x", "simipu_lr003"}
    assert result["pretrain"]["simipu_4x"]["summary"]["steps"] == 4 * result["plan"]["pretrain_steps"]
    assert result["pretrain"]["no_inter"]["encoder"]["image_encoder_unchanged"]      # μ = 0: no gradient
    assert not result["pretrain"]["simipu"]["encoder"]["image_encoder_unchanged"]
    assert (quick_run / "depth_probe.png").stat().st_size > 10_000
