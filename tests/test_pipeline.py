"""The pre-training sample pipeline and its batch contract, on the real KITTI frames."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from simipu.config import DataConfig
from simipu.data import KittiDataset
from simipu.errors import DataError
from simipu.geometry import in_image, project_points, sample_image
from simipu.pipeline import PretrainDataset, collate, denormalize_image

N_POINTS = 2048


def _cfg(root, **kw) -> DataConfig:
    return dataclasses.replace(DataConfig(root=str(root), num_points=N_POINTS, num_workers=0), **kw)


def test_batch_has_the_contract_keys_shapes_and_dtypes(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root))
    batch = collate([ds[0], ds[1]])
    assert set(batch) == {"points_a", "points_b", "T_ab", "image", "lidar2img", "image_hw", "frame_id"}
    B, N = 2, N_POINTS
    for key, shape in [("points_a", (B, N, 4)), ("points_b", (B, N, 4)), ("T_ab", (B, 4, 4)),
                       ("lidar2img", (B, 4, 4))]:
        assert batch[key].shape == shape and batch[key].dtype == torch.float32, key
    _, C, Hp, Wp = batch["image"].shape
    assert C == 3 and batch["image"].dtype == torch.float32 and Hp % 32 == 0 and Wp % 32 == 0
    assert batch["image_hw"].shape == (B, 2) and batch["image_hw"].dtype == torch.int64
    assert batch["frame_id"] == ["000134", "000002"]
    for b, (h, w) in enumerate(batch["image_hw"].tolist()):
        assert 192 <= h <= 720 and h <= Hp and w <= Wp
        assert (batch["image"][b, :, h:] == 0).all() and (batch["image"][b, :, :, w:] == 0).all()
        assert batch["image"][b, :, :h, :w].abs().sum(0).gt(0).float().mean() > 0.9
    x0, y0, z0, x1, y1, z1 = DataConfig().point_range
    xyz = batch["points_a"][..., :3]
    assert (xyz[..., 0] >= x0).all() and (xyz[..., 0] < x1).all() and (xyz[..., 1].abs() <= 40).all()


def test_points_b_is_T_ab_of_points_a_up_to_shuffling(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root))
    for i in range(len(ds)):
        s = ds[i]
        A, t = s["T_ab"][:3, :3].astype(np.float64), s["T_ab"][:3, 3].astype(np.float64)
        mapped = s["points_a"][:, :3] @ A.T + t
        dist, idx = cKDTree(s["points_b"][:, :3]).query(mapped)
        assert dist.max() < 1e-3
        assert len(np.unique(idx)) == N_POINTS                     # a bijection: a permutation of points_a
        np.testing.assert_array_equal(s["points_b"][idx, 3], s["points_a"][:, 3])
        assert not np.array_equal(idx, np.arange(N_POINTS))


def test_batch_lidar2img_projects_points_a_onto_the_original_image_colours(kitti_real_root):
    raw = KittiDataset(kitti_real_root)
    ds = PretrainDataset(_cfg(kitti_real_root))
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        batch = collate([ds[0], ds[1]])
        for b in range(2):
            frame = raw[b]
            xyz = batch["points_a"][b, :, :3].double()
            uv, depth = project_points(xyz, batch["lidar2img"][b].double())          # (N, 2) network input
            mask = in_image(uv, depth, batch["image_hw"][b]).numpy()
            assert mask.mean() > 0.95                                            # the clouds are FOV-cropped
            seen = sample_image(denormalize_image(batch["image"][b]), uv.numpy()[mask])
            uv0, _ = project_points(xyz.numpy()[mask], frame["calib"].lidar2img)   # original image
            truth = sample_image(frame["image"], uv0)
            err = np.abs(seen - truth).mean()
            wrong = np.abs(sample_image(denormalize_image(batch["image"][b]), uv0) - truth).mean()
            assert err < 6.0 and err < 0.2 * wrong, (epoch, b, err, wrong)
            (u_left, _), (u_right, _) = project_points(np.array([[20.0, 5, 0], [20.0, -5, 0]]),
                                                      batch["lidar2img"][b].double().numpy())[0]
            flips.add(bool(u_left > u_right))
    assert flips == {True, False}                                            # both image flips were exercised


def test_samples_repeat_for_the_same_seed_epoch_index_and_change_with_the_epoch(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root))
    a, b = ds[1], ds[1]
    for key in ("points_a", "points_b", "T_ab", "image", "lidar2img"):
        np.testing.assert_array_equal(a[key], b[key])
    ds.set_epoch(1)
    assert not np.array_equal(ds[1]["points_a"], a["points_a"])
    other_seed = PretrainDataset(_cfg(kitti_real_root, seed=7))
    assert not np.array_equal(other_seed[1]["T_ab"], a["T_ab"])


def test_dataloader_with_collate_yields_contract_batches(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root, img_scale_range=((640, 192), (640, 192))))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 192, 640)                          # 636x192 and 635x192, padded and batch["points_a"].shape == (2, N_POINTS, 4)


def test_fov_only_keeps_points_inside_the_camera_view(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root, fov_only=True), split_override=("test",))
    s = ds[0]
    uv, depth = project_points(s["points_a"][:, :3].astype(np.float64), s["lidar2img"].astype(np.float64))
    assert in_image(uv, depth, s["image_hw"]).all()


def test_cloud_empty_after_cropping_is_a_data_error_naming_the_file(kitti_real_root):
    ds = PretrainDataset(_cfg(kitti_real_root, point_range=(-10, -1, -3, -5, 1, 1)))
    with pytest.raises(DataError, match=r"000134\.bin.*no point left after cropping"):
        ds[0]
