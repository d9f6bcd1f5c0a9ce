"""Connecting to Ray (local or a cluster) and turning scenario resources into Ray options."""

from memorylab.cluster.connect import connect, ray_session
from memorylab.cluster.resources import actor_options, torch_threads

__all__ = ["connect", "ray_session", "actor_options", "torch_threads"]
