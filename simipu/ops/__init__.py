"""Point cloud ops of PointNet++ / 3DSSD: furthest point sampling, ball query, grouping."""
from .grouping import ball_query, ball_query_naive, group_points
from .sampling import (feature_furthest_point_sample, furthest_point_sample,
                       furthest_point_sample_naive, sample_points_by_mode)

__all__ = [
    "ball_query", "ball_query_naive", "group_points",
    "feature_furthest_point_sample", "furthest_point_sample", "furthest_point_sample_naive",
    "sample_points_by_mode",
]
