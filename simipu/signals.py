"""Signals of pre-training on held-out frames: both losses, top-1 accuracies, and wrong positive pairs.

A positive pair of a contrastive loss is *wrong* when its two sides show different objects. The synthetic
generator (:mod:`simipu.synth`) writes the instance id of every LiDAR point (``velodyne_instance/ID.bin``,
int32, same order as ``velodyne/``) and of every image pixel (``instance_2/ID.png``, uint16), 0 = stuff
(road, buildings, sky), so the share of wrong positives can be counted — real data cannot tell it:

* **L_intra** (Eq. 3–4): a matched pair ``(l_a[i], l_b[j])`` is wrong when the two SA centres lie on
  different instances. Centres are input points (FPS picks them), so their instance is read off the cloud
  by nearest neighbour (distance 0 for view a; view b is first mapped back with ``T_ab⁻¹``).
* **L_inter** (Eq. 5–7): a point's positive is the image feature at its projection, sampled from the
  stride-32 feature map; it is wrong when the feature cell containing the projection is dominated (most
  pixels) by another instance — occlusion and parallax put a different object there.

Each share is given over all pairs and over pairs whose point is on an object (instance ≠ 0). Run on
checkpoints, in eval mode (BatchNorm running statistics), on frames the run never trained on.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy.spatial import cKDTree

from .geometry import in_image, project_points
from .matching import match_views
from .pipeline import PretrainDataset, collate


def point_instances(xyz: np.ndarray, cloud_xyz: np.ndarray, cloud_instance: np.ndarray) -> np.ndarray:
    """Instance id (M,) of each of ``xyz`` (M, 3): that of its nearest point in ``cloud_xyz`` (N, 3)."""
    _, nearest = cKDTree(cloud_xyz).query(np.asarray(xyz, np.float64))
    return cloud_instance[nearest]


def cell_majority(instance: np.ndarray, img_aug: np.ndarray, image_hw, stride: int = 32) -> np.ndarray:
    """Most frequent instance id per feature cell of the network input → (ceil(h/stride), ceil(w/stride)).

    Args:
        instance: (H, W) int instance image of the original camera image.
        img_aug: (4, 4) pixel affine original → network input, ``u' = a_u·u + b_u``, ``v' = a_v·v + b_v``
            (resize and flip, as built by :mod:`simipu.views`).
        image_hw: (h, w) valid size of the network input. Each original pixel centre votes for the cell
            its image lands in (a resize scales all pixels alike, so votes are proportional to area).
    Cells no pixel lands in get -1.
    """
    H, W = instance.shape
    h, w = int(image_hw[0]), int(image_hw[1])
    hc, wc = -(-h // stride), -(-w // stride)
    v, u = np.mgrid[0:H, 0:W] + 0.5
    u2, v2 = img_aug[0, 0] * u + img_aug[0, 2], img_aug[1, 1] * v + img_aug[1, 2]
    ok = (u2 >= 0) & (u2 < w) & (v2 >= 0) & (v2 < h)
    cell = (v2[ok] // stride).astype(np.int64) * wc + (u2[ok] // stride).astype(np.int64)
    k = int(instance.max()) + 1
    votes = np.bincount(cell * k + instance[ok].astype(np.int64), minlength=hc * wc * k).reshape(hc * wc, k)
    out = votes.argmax(1)
    out[votes.sum(1) == 0] = -1
    return out.reshape(hc, wc)


def _share(wrong: list, on_object: list) -> tuple[float, float]:
    wrong, on_object = np.concatenate(wrong), np.concatenate(on_object)
    if len(wrong) == 0:
        return float("nan"), float("nan")
    return float(wrong.mean()), float(wrong[on_object].mean()) if on_object.any() else float("nan")


@torch.no_grad()
def pretraining_signals(model, data_cfg, split: str = "val", frames: int = 16, batch_size: int = 2) -> dict:
    """Losses, top-1 accuracies and wrong-positive shares of ``model`` on the first ``frames`` of ``split``.

    Args:
        model: a :class:`simipu.model.SimIPU` (put in eval mode here).
        data_cfg: its :class:`simipu.config.DataConfig` (``root`` must hold ``velodyne_instance/`` and
            ``instance_2/``); the views are drawn with the dataset's seed at epoch 0, so every checkpoint
            sees the same samples.
    Returns:
        dict(loss_intra, loss_inter, intra_top1, inter_top1 (batch means), intra_wrong, intra_wrong_objects,
        inter_wrong, inter_wrong_objects (pooled shares), pairs_intra, points_inter (counts)).
    """
    model.eval()
    ds = PretrainDataset(data_cfg, split_override=[split])
    ds.set_epoch(0)
    n = min(frames, len(ds))
    rows, intra_wrong, intra_obj, inter_wrong, inter_obj = [], [], [], [], []
    for start in range(0, n - batch_size + 1, batch_size):
        samples = [ds[i] for i in range(start, start + batch_size)]
        batch = collate(samples)
        out = model(batch)
        rows.append({k: float(out[k]) for k in ("loss_intra", "loss_inter", "intra_top1", "inter_top1")})
        l_a, _ = model.point_encoder(batch["points_a"])                 # (B, M, 3), view a = LiDAR frame
        l_b, _ = model.point_encoder(batch["points_b"])                 # (B, M, 3), view b
        matches = match_views(l_a, l_b, batch["T_ab"], model.cfg.matching) if model.cfg.lambda_intra > 0 else None
        uv, depth = project_points(l_a, batch["lidar2img"])             # (B, M, 2), network-input pixels
        valid = in_image(uv, depth, batch["image_hw"]).numpy()          # (B, M)
        for b, i in enumerate(range(start, start + batch_size)):
            frame = ds.frames[i]
            d = ds.frames.root / frame["split_dir"]
            cloud = frame["points"][:, :3].astype(np.float64)
            cloud_inst = np.fromfile(d / "velodyne_instance" / f"{frame['frame_id']}.bin", dtype="<i4")
            inst_a = point_instances(l_a[b].numpy(), cloud, cloud_inst)  # (M,)
            if matches is not None:
                r, c = matches[b]
                T_inv = np.linalg.inv(batch["T_ab"][b].numpy().astype(np.float64))
                lb_in_a = l_b[b, c].numpy() @ T_inv[:3, :3].T + T_inv[:3, 3]
                inst_b = point_instances(lb_in_a, cloud, cloud_inst)
                intra_wrong.append(inst_a[r] != inst_b)
                intra_obj.append(inst_a[r] != 0)
            with Image.open(d / "instance_2" / f"{frame['frame_id']}.png") as im:
                inst_img = np.asarray(im).astype(np.int64)
            img_aug = batch["lidar2img"][b].numpy().astype(np.float64) @ np.linalg.inv(frame["calib"].lidar2img)
            cells = cell_majority(inst_img, img_aug, batch["image_hw"][b].numpy(), model.image_encoder.stride)
            cu = (uv[b, valid[b], 0].numpy() // model.image_encoder.stride).astype(np.int64)
            cv = (uv[b, valid[b], 1].numpy() // model.image_encoder.stride).astype(np.int64)
            inter_wrong.append(cells[cv, cu] != inst_a[valid[b]])
            inter_obj.append(inst_a[valid[b]] != 0)
    result = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    if intra_wrong:
        result["intra_wrong"], result["intra_wrong_objects"] = _share(intra_wrong, intra_obj)
    result["inter_wrong"], result["inter_wrong_objects"] = _share(inter_wrong, inter_obj)
    result.update(pairs_intra=int(sum(len(w) for w in intra_wrong)), points_inter=int(sum(len(w) for w in inter_wrong)))
    return result
