"""The install the README promises: compatible ranges with tested pins, extras that match who uses what, a
one-line error naming a missing extra, a wheel that builds with the lowest declared backend, and the conda
environment, the pip install and the CI script agreeing."""
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEPS = PROJECT["project"]["dependencies"]
EXTRAS = PROJECT["project"]["optional-dependencies"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _all_requirements() -> list[str]:
    """Core and every extra, without the extras' references to simipu's own extras."""
    return DEPS + [r for reqs in EXTRAS.values() for r in reqs if _name(r) != "simipu"]


def _constraints(python_full_version: str | None = None) -> dict:
    """Package name -> pinned version, for this interpreter or for ``python_full_version`` (pins may carry an
    environment marker, e.g. a release that needs a later Python 3.11.x than Debian's)."""
    env = None if python_full_version is None else {"python_full_version": python_full_version}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert [s.operator for s in req.specifier] == ["=="], f"constraints.txt: not an exact pin: {line}"
            if req.marker is None or req.marker.evaluate(env):
                assert _name(req.name) not in pins, f"constraints.txt pins {req.name} twice for one Python"
                pins[_name(req.name)] = next(iter(req.specifier)).version
    return pins


def test_the_pins_install_on_every_python_3_11():
    """Each pinned release must accept every Python 3.11.x it is pinned for (read from the installed packages'
    Requires-Python): soupsieve 4.1.3 needs 3.11.5, so Debian 12's python3 (3.11.2) could not resolve the
    tested set at all. Checked for the pins this interpreter installed; a marker alternative must exist."""
    from importlib import metadata
    from packaging.specifiers import SpecifierSet
    here = _constraints()
    for patch in range(0, 15):
        version = f"3.11.{patch}"
        pins = _constraints(version)
        assert set(pins) == set(here), f"Python {version} gets a different set of pinned packages"
        for name, pinned in pins.items():
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                continue                      # not installed here (another platform's package)
            if dist.version != pinned:
                continue                      # the marker alternative for another 3.11.x: not installed here
            needs = dist.metadata.get("Requires-Python")
            assert not needs or version in SpecifierSet(needs), (
                f"{name}=={pinned} needs Python {needs}; pin an older release for {version} with a marker")


def test_environment_yml_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_reqs = [r for r in conda_pip if not r.startswith("-")]
    assert sorted(map(_name, conda_reqs)) == sorted(map(_name, _all_requirements()))
    # same version constraints too, not just names
    assert sorted(r.replace(" ", "") for r in conda_reqs) == sorted(r.replace(" ", "") for r in _all_requirements())
    assert "-c constraints.txt" in conda_pip and "-e ." in conda_pip


def test_torch_is_a_compatible_range_and_the_constraints_pin_every_direct_dependency_inside_it():
    torch_req = next(Requirement(r) for r in DEPS if _name(r) == "torch")
    assert not any(s.operator == "==" for s in torch_req.specifier), "torch must be a range, not a pin"
    pins = _constraints()
    for req in map(Requirement, _all_requirements()):
        name = _name(req.name)
        assert name in pins, f"constraints.txt does not pin the direct dependency {name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"


def test_readme_commands_install_every_extra_at_the_tested_versions():
    env_sh = (ROOT / "scripts" / "env.sh").read_text()
    assert '-c "$ROOT/constraints.txt" -e "$ROOT[dev]"' in env_sh
    assert "constraints.txt" in env_sh.split("WANT=")[1].splitlines()[0]  # a changed pin refreshes .venv
    assert "simipu[synth,notebooks,wandb]" in EXTRAS["dev"] and "simipu[synth]" in EXTRAS["notebooks"]
    core = set(map(_name, DEPS))
    assert not core & {"open3d", "libusb-package", "jupyterlab", "ipywidgets", "wandb", "pytest"}  # a lean core
    assert "nbformat" in core  # simipu.exercises imports it at run time


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


# A Python without the optional packages: the import system finds no module of these names.
WITHOUT_EXTRAS = ("import sys\nfor m in ('open3d', 'libusb_package', 'jupyterlab', 'ipywidgets', 'wandb'): "
                  "sys.modules[m] = None\n")


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + code], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


@pytest.mark.parametrize("argv, extra, module", [
    (["synth", "--out", "x", "--frames", "1"], "synth", "open3d"),
    (["pretrain", "--data-root", str(ROOT / "data_samples"), "--out", "run", "--max-steps", "1", "--no-progress",
      "train.logger=wandb", "data.num_workers=0"], "wandb", "wandb"),
])
def test_a_missing_extra_is_a_one_line_error_that_names_it(tmp_path, argv, extra, module):
    p = _run(f"from simipu.cli import main; raise SystemExit(main({argv!r}))", tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'simipu[{extra}]'" in lines[0] and f"'{module}'" in lines[0]
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("step_*.pt"))  # nothing half-written


def test_the_core_commands_run_without_the_synth_and_notebooks_extras(tmp_path):
    code = (f"from simipu.cli import main\n"
            f"assert main(['inspect', '--data-root', {str(ROOT / 'data_samples')!r}, '--frame', '000000', "
            f"'--out', 'f.png']) == 0\n"
            f"import simipu.train, simipu.export, simipu.depth, simipu.viz.training\n")
    p = _run(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "f.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_wheel_builds_with_the_lowest_declared_setuptools(tmp_path):
    """Installs exactly the lowest setuptools that ``[build-system]`` allows into a throwaway venv and
    builds the wheel with it (the package index is needed; skips when it cannot be reached)."""
    (req,) = [Requirement(r) for r in PROJECT["build-system"]["requires"] if _name(r) == "setuptools"]
    (lowest,) = [s.version for s in req.specifier if s.operator == ">="]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", f"setuptools=={lowest}"], capture_output=True,
                         text=True, timeout=600)
    if pip.returncode:
        last = (pip.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install setuptools=={lowest} from the package index (offline?): {last}")
    src = tmp_path / "src"  # the files a source distribution holds, without runs/ or a .venv
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "simipu", src / "simipu", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([str(py), "-c", "import sys; from setuptools import build_meta, __version__ as v; "
                            "w = build_meta.build_wheel('dist'); sys.stderr.write(f'RESULT {v} {w}')"],
                           cwd=src, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    version, wheel = build.stderr.rsplit("RESULT ", 1)[1].split()
    assert version == lowest
    import zipfile
    with zipfile.ZipFile(src / "dist" / wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = set(z.namelist())
    assert "License-Expression: MIT" in meta
    # the presets ship inside the package: `--config kitti` works from a plain (non-editable) install
    assert {f"simipu/configs/{p}.yaml" for p in ("tiny", "kitti", "waymo")} <= names
    assert {f"Provides-Extra: {e}" for e in ("synth", "notebooks", "wandb", "dev")} <= set(meta.splitlines())


def test_the_presets_live_inside_the_package_where_package_data_ships_them():
    """A non-editable install holds only the package: the presets must be under it and matched by package-data."""
    from simipu.config import CONFIG_DIR
    pkg = ROOT / "simipu"
    assert CONFIG_DIR.resolve().parent == pkg.resolve()
    globs = PROJECT["tool"]["setuptools"]["package-data"]["simipu"]
    shipped = {p.name for g in globs for p in pkg.glob(g)}
    assert {"tiny.yaml", "kitti.yaml", "waymo.yaml"} <= shipped
