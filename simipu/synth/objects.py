"""Procedural street objects: cars, pedestrians, cyclists (labelled), trees, poles, signs.

Each builder returns a :class:`Mesh` in the object frame (x forward = heading, y left, z up,
origin at the bottom centre of the object's box) and, for labelled things, its KITTI box
size ``(h, w, l)`` in metres: the mesh fits inside ``[-l/2, l/2] x [-w/2, w/2] x [0, h]``.
"""
from __future__ import annotations

import numpy as np

from .primitives import (CLOTH, FOLIAGE, GLASS, LAMP, METAL, PAINT, SIGN, SKIN, TIRE, TRUNK,
                         Mesh, MeshBuilder, box, cylinder, frustum, rot_x, rot_y, sphere)

# Linear-RGB paint colours, roughly the mix of a European street (many greys, some colour).
CAR_PAINTS = np.array([[0.8, 0.8, 0.8], [0.04, 0.04, 0.045], [0.35, 0.36, 0.38], [0.15, 0.16, 0.18],
                       [0.6, 0.03, 0.02], [0.03, 0.08, 0.35], [0.55, 0.55, 0.5], [0.12, 0.25, 0.1],
                       [0.7, 0.45, 0.05], [0.02, 0.2, 0.45]])
CLOTHES = np.array([[0.02, 0.02, 0.03], [0.05, 0.07, 0.2], [0.3, 0.02, 0.02], [0.25, 0.25, 0.25],
                    [0.5, 0.4, 0.25], [0.03, 0.15, 0.05], [0.6, 0.6, 0.6], [0.6, 0.3, 0.02]])
SKINS = np.array([[0.6, 0.4, 0.3], [0.35, 0.2, 0.12], [0.15, 0.08, 0.05], [0.5, 0.33, 0.22]])


def _wheel(b: MeshBuilder, radius: float, width: float, x: float, y: float, instance: int):
    """A tyre: a cylinder whose axis is the object's y axis, centred at (x, y, radius)."""
    b.add(cylinder(radius, width, 12), TIRE, (0.02, 0.02, 0.02), instance, R=rot_x(np.pi / 2),
          t=(x, y + width / 2, radius))


def car(rng: np.random.Generator, instance: int) -> tuple[Mesh, tuple[float, float, float]]:
    """A sedan / hatchback / SUV: body, glass cabin, roof, four wheels, lights."""
    kind = rng.choice(3, p=[0.5, 0.3, 0.2])
    l = rng.uniform(*[(4.2, 4.9), (3.7, 4.3), (4.3, 4.9)][kind])
    w = rng.uniform(1.65, 1.9)
    h = rng.uniform(*[(1.4, 1.52), (1.45, 1.6), (1.65, 1.85)][kind])
    paint = CAR_PAINTS[rng.integers(len(CAR_PAINTS))] * rng.uniform(0.85, 1.1)
    b = MeshBuilder()
    r_wheel, z_body, z_belt = 0.32, 0.28, 0.55 * h + 0.12
    b.add(frustum((l, w), (l - 0.1, w - 0.04), z_body, z_belt), PAINT, paint, instance)
    # The cabin sits back from the hood; it is longer for hatchbacks and SUVs.
    cab_l = l * [0.5, 0.62, 0.7][kind]
    cab_shift = [-0.1, -0.22, -0.12][kind] * l
    z_roof = h - 0.05
    b.add(frustum((cab_l, w - 0.1), (cab_l * 0.72, w - 0.3), z_belt, z_roof, -0.05 * l),
          GLASS, (0.012, 0.014, 0.016), instance, t=(cab_shift, 0, 0))
    b.add(frustum((cab_l * 0.74, w - 0.28), (cab_l * 0.68, w - 0.34), z_roof, h, 0.0), PAINT, paint, instance,
          t=(cab_shift - 0.05 * l, 0, 0))
    for sx in (-1, 1):
        for sy in (-1, 1):
            _wheel(b, r_wheel, 0.22, sx * (l / 2 - 0.78), sy * (w / 2 - 0.12), instance)
        light = (0.9, 0.85, 0.6) if sx > 0 else (0.5, 0.0, 0.0)
        for sy in (-1, 1):
            b.add(box((0.04, 0.3, 0.1), (sx * (l / 2 + 0.005), sy * (w / 2 - 0.25), z_belt - 0.08)),
                  LAMP, light, instance)
    return b.build(), (h, w, l)


def _walker(b: MeshBuilder, rng, instance: int, h: float, lean: float = 0.0, stride: float = 0.3,
            sitting: bool = False, origin=(0.0, 0.0, 0.0)):
    """A person of height h: legs, torso, arms, head (boxes and a sphere), facing +x."""
    ox, oy, oz = origin
    shirt, trousers = CLOTHES[rng.integers(len(CLOTHES), size=2)]
    skin = SKINS[rng.integers(len(SKINS))]
    leg_len, torso_len, head_r = 0.47 * h, 0.3 * h, 0.065 * h
    hip = oz + (0.55 if sitting else leg_len)
    for side, swing in ((-1, stride), (1, -stride)):
        R = rot_y(-1.3) if sitting else rot_y(swing)  # sitting: thighs forward to the pedals
        leg = box((0.13, 0.14, leg_len), (0, 0, -leg_len / 2))
        b.add(leg, CLOTH, trousers, instance, R=R, t=(ox, oy + side * 0.1, hip))
    R_torso = rot_y(lean)
    b.add(box((0.22, 0.38, torso_len), (0, 0, torso_len / 2)), CLOTH, shirt, instance, R=R_torso, t=(ox, oy, hip))
    shoulder = np.array([ox, oy, hip]) + R_torso @ np.array([0, 0, torso_len])
    for side, swing in ((-1, -stride), (1, stride)):
        arm = box((0.09, 0.09, 1.1 * torso_len), (0, 0, -0.55 * torso_len))
        b.add(arm, CLOTH, shirt, instance, R=rot_y(swing - (lean * 1.6 if sitting else 0)),
              t=shoulder + np.array([0, side * 0.24, -0.02]))
    head = shoulder + R_torso @ np.array([0, 0, head_r + 0.06])
    b.add(sphere(head_r, 6, 10), SKIN, skin, instance, t=head)
    b.add(box((0.05, 0.09, 0.08), (0, 0, 0)), SKIN, skin, instance, t=shoulder + np.array([0, 0, 0.03]))


def pedestrian(rng: np.random.Generator, instance: int) -> tuple[Mesh, tuple[float, float, float]]:
    """A walking person; KITTI box size about h 1.5-1.95, w 0.5-0.7, l 0.5-0.9."""
    h = rng.uniform(1.5, 1.95)
    b = MeshBuilder()
    stride = rng.uniform(0.0, 0.4)
    _walker(b, rng, instance, h * 0.96, lean=rng.uniform(-0.05, 0.1), stride=stride)
    w, l = 0.58, max(0.5, 2 * 0.47 * h * np.sin(stride) + 0.25)
    return b.build(), (h, w, l)


def cyclist(rng: np.random.Generator, instance: int) -> tuple[Mesh, tuple[float, float, float]]:
    """A bicycle (wheels as tyre rings, frame tubes) ridden by a leaning person."""
    b = MeshBuilder()
    r, base = 0.34, 1.05
    frame = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    for x in (-base / 2, base / 2):
        for k in range(16):  # a tyre ring of short bars
            a = 2 * np.pi * k / 16
            b.add(box((0.15, 0.04, 0.05)), TIRE, (0.02, 0.02, 0.02), instance,
                  R=rot_y(a), t=(x + r * np.sin(a), 0, r + r * np.cos(a)))
    for (x0, z0), (x1, z1) in [((-base / 2, r), (0.0, r)), ((0.0, r), (-0.1, 0.85)),
                               ((0.0, r), (base / 2 - 0.1, 0.85)), ((-0.1, 0.85), (base / 2 - 0.1, 0.85)),
                               ((base / 2, r), (base / 2 - 0.12, 1.0)), ((-base / 2, r), (-0.1, 0.85))]:
        length = np.hypot(x1 - x0, z1 - z0)
        b.add(box((length, 0.04, 0.04)), METAL, frame, instance, R=rot_y(-np.arctan2(z1 - z0, x1 - x0)),
              t=((x0 + x1) / 2, 0, (z0 + z1) / 2))
    b.add(box((0.05, 0.5, 0.04), (base / 2 - 0.12, 0, 1.0)), METAL, (0.05, 0.05, 0.05), instance)
    h_rider = rng.uniform(1.65, 1.85)
    _walker(b, rng, instance, h_rider * 0.95, lean=0.55, stride=0.0, sitting=True, origin=(-0.15, 0, 0.38))
    mesh = b.build()
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    l = float(max(hi[0], -lo[0]) * 2 + 0.02)
    return mesh, (float(hi[2] + 0.02), 0.6, l)


def tree(rng: np.random.Generator) -> Mesh:
    """A trunk with one or two bumpy crowns; base at the origin."""
    b = MeshBuilder()
    trunk_h = rng.uniform(2.0, 3.5)
    b.add(cylinder(rng.uniform(0.12, 0.22), trunk_h + 0.5, 8, 0.1), TRUNK, (0.12, 0.07, 0.04))
    green = np.array([0.05, 0.16, 0.03]) * rng.uniform(0.7, 1.4, 3)
    r = rng.uniform(1.3, 2.8)
    b.add(sphere(r, 8, 12, rng, 0.18), FOLIAGE, green, param=(rng.uniform(0, 100), 0, 0, 0),
          R=np.diag([1, 1, rng.uniform(0.8, 1.3)]), t=(0, 0, trunk_h + r * 0.85))
    if rng.random() < 0.5:
        r2 = r * rng.uniform(0.5, 0.8)
        b.add(sphere(r2, 6, 10, rng, 0.2), FOLIAGE, green * 1.1, param=(rng.uniform(0, 100), 0, 0, 0),
              t=(rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), trunk_h + 1.6 * r))
    return b.build()


def pole(rng: np.random.Generator) -> Mesh:
    """A street lamp (pole, arm, lamp head) or a traffic sign (pole and a round or square plate)."""
    b = MeshBuilder()
    grey = (0.25, 0.26, 0.27)
    if rng.random() < 0.6:
        h = rng.uniform(6.0, 9.0)
        b.add(cylinder(0.09, h, 8, 0.06), METAL, grey)
        b.add(box((0.06, 1.6, 0.06), (0, 0.8, h - 0.05)), METAL, grey)
        b.add(box((0.25, 0.5, 0.12), (0, 1.55, h - 0.12)), LAMP, (0.6, 0.6, 0.55))
    else:
        h = rng.uniform(2.2, 3.0)
        b.add(cylinder(0.04, h, 8), METAL, grey)
        colour = [(0.6, 0.02, 0.02), (0.02, 0.1, 0.5), (0.8, 0.6, 0.02)][rng.integers(3)]
        if rng.random() < 0.5:
            b.add(cylinder(0.32, 0.03, 16), SIGN, colour, R=rot_y(np.pi / 2), t=(0.05, 0, h - 0.2))
        else:
            b.add(box((0.03, 0.6, 0.6), (0.05, 0, h - 0.2)), SIGN, colour)
    return b.build()
