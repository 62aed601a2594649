"""Notebooks find data_samples/ from any folder: above them, through an environment variable, or beside the package."""
from pathlib import Path

import pytest

from simipu.notebook import DATA_ENV, find_data_samples, has_display

REPO = Path(__file__).resolve().parents[1]


def _data_root(path: Path) -> Path:
    (path / "training" / "velodyne").mkdir(parents=True)
    return path


def test_data_samples_found_from_a_nested_student_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    data = _data_root(tmp_path / "course" / "data_samples")
    deep = tmp_path / "course" / "student_notebooks" / "week1"
    deep.mkdir(parents=True)
    assert find_data_samples(deep) == data.resolve()


def test_environment_variable_wins_and_a_wrong_one_is_an_error(tmp_path, monkeypatch):
    data = _data_root(tmp_path / "elsewhere")
    monkeypatch.setenv(DATA_ENV, str(data))
    assert find_data_samples(tmp_path) == data.resolve()
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV):
        find_data_samples(tmp_path)


def test_outside_any_checkout_the_data_beside_the_package_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert find_data_samples(tmp_path) == REPO / "data_samples"


def test_no_display_means_no_native_window(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert has_display() is (__import__("sys").platform in ("darwin", "win32"))


def test_plotly_renders_offline_html_and_a_static_png_when_a_browser_can_draw_it(monkeypatch):
    import plotly.io as pio

    import simipu.notebook as nbmod
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)  # restored after the test
    monkeypatch.setattr(nbmod, "_in_kernel", lambda: True)
    monkeypatch.setattr(nbmod, "static_images_available", lambda: True)
    assert nbmod.configure_plotly() == "plotly_mimetype+notebook+png" == pio.renderers.default
    monkeypatch.setattr(nbmod, "static_images_available", lambda: False)
    assert nbmod.configure_plotly() == "plotly_mimetype+notebook"
    monkeypatch.setattr(nbmod, "_in_kernel", lambda: False)
    assert nbmod.configure_plotly() == "browser"


def test_no_kaleido_means_no_static_images_and_no_error(monkeypatch):
    import builtins

    from simipu.notebook import static_images_available
    real_import = builtins.__import__

    def without_kaleido(name, *args, **kwargs):
        if name == "kaleido":
            raise ImportError("No module named 'kaleido'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", without_kaleido)
    assert static_images_available() is False
