"""SimIPU: 2D image + 3D LiDAR contrastive pre-training."""
__version__ = "0.1.0"
