"""`simipu inspect` writes point-to-pixel pictures for any KITTI-format frame, and refuses bad input clearly."""
from pathlib import Path

import numpy as np
import pytest

from simipu.cli import main
from simipu.errors import DataError
from simipu.viz.matches import cell_majority, inspect_frame, wrong_matches

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def _frame0() -> str:
    return sorted((SAMPLES / "training" / "velodyne").glob("*.bin"))[0].stem


@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_inspect_cli_writes_png_and_html_for_a_synthetic_frame(tmp_path, suffix, capsys):
    out = tmp_path / f"frame{suffix}"
    assert main(["inspect", "--data-root", str(SAMPLES), "--frame", _frame0(), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert str(out) in capsys.readouterr().out
    if suffix == ".png":
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        html = out.read_text()
        assert "plotly" in html and "Scatter3d".lower() in html.lower() and "<script" in html  # standalone
        assert 'src="https://cdn.plot.ly' not in html and len(html) > 3_000_000  # plotly.js embedded: offline


@pytest.mark.parametrize("split, frame", [("training", "000134"), ("testing", "000002")])
@pytest.mark.parametrize("suffix", [".png", ".html"])
def test_inspect_cli_writes_png_and_html_for_real_kitti_frames(kitti_real, tmp_path, split, frame, suffix):
    out = tmp_path / f"{frame}{suffix}"
    rc = main(["inspect", "--data-root", str(kitti_real), "--frame", frame, "--split", split, "--out", str(out)])
    assert rc == 0 and out.stat().st_size > 10_000


def test_inspect_unknown_frame_exits_2_and_names_it(tmp_path, capsys):
    rc = main(["inspect", "--data-root", str(SAMPLES), "--frame", "424242", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "424242" in err and "no frame" in err
    assert not (tmp_path / "x.png").exists()


def test_inspect_unknown_split_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="split folder"):
        inspect_frame(SAMPLES, _frame0(), tmp_path / "x.png", split="testing")


def test_inspect_refuses_other_extensions_before_reading_data(tmp_path):
    with pytest.raises(ValueError, match=r"\.png.*\.html"):
        inspect_frame(tmp_path / "does_not_exist", "000000", tmp_path / "x.jpg")


def test_inspect_frame_ids_cannot_escape_the_split_folder(tmp_path):
    with pytest.raises(DataError):
        inspect_frame(SAMPLES, "../velodyne/" + _frame0(), tmp_path / "x.png")


def test_wrong_matches_uses_the_pixel_under_the_point_and_the_cell_majority():
    img = np.zeros((4, 8), dtype=np.int64)
    img[:, 2:4] = 7  # columns 2 and 3 show object 7
    uv = np.array([[2.0, 0.5], [1.99, 0.5], [3.99, 3.9], [4.0, 1.0]])  # pixel i covers [i, i + 1)
    ids = np.array([7, 7, 7, 7])
    assert wrong_matches(img, uv, ids).tolist() == [False, True, False, True]
    # 4x4 blocks: block 0 holds columns 0-3 (half object 7, half 0, the tie goes to the lower id 0)
    assert cell_majority(img, 4).tolist() == [[0, 0]]
    img[:, 1] = 7
    assert cell_majority(img, 4).tolist() == [[7, 0]]
    assert wrong_matches(img, uv, ids, cell=4).tolist() == [False, False, False, True]


def test_inspect_with_a_checkpoint_colours_points_by_learned_similarity(tmp_path):
    torch = pytest.importorskip("torch")
    from simipu.checkpoint import save_checkpoint
    from simipu.config import load_config
    from simipu.model import SimIPU
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = SimIPU(cfg.model)
    path = save_checkpoint(dict(model=model.state_dict(), step=0, config=cfg.to_dict()), tmp_path / "run", 0)
    for suffix in (".png", ".html"):
        out = tmp_path / f"sim{suffix}"
        assert main(["inspect", "--data-root", str(SAMPLES), "--frame", _frame0(), "--out", str(out),
                     "--ckpt", str(path)]) == 0
        assert out.stat().st_size > 10_000
    assert "cos sim" in (tmp_path / "sim.html").read_text()


def test_inspect_with_a_missing_checkpoint_exits_2(tmp_path, capsys):
    rc = main(["inspect", "--data-root", str(SAMPLES), "--frame", _frame0(), "--out", str(tmp_path / "x.png"),
               "--ckpt", str(tmp_path / "nope.pt")])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err
