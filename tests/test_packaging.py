"""The conda environment, the pip install and the CI script agree with what the README promises."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = [r for r in conda_pip if not r.startswith("-e")]
    assert sorted(map(_name, conda_reqs)) == sorted(map(_name, pip_reqs))
    # same version constraints too, not just names
    assert sorted(r.replace(" ", "") for r in conda_reqs) == sorted(r.replace(" ", "") for r in pip_reqs)


def test_torch_and_torchvision_are_pinned():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/pretrain_samples.sh" in readme
    assert "bash scripts/test.sh" in ci


def test_notebooks_are_committed_without_outputs():
    import nbformat
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} has outputs; clear them before committing"
                assert cell.execution_count is None, f"{path.name} has execution counts"
