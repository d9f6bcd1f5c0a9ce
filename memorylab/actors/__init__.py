"""Thin Ray actors around one backend each; resources come from the scenario."""

from memorylab.actors.model_actor import ModelActor, create_model_actor
from memorylab.actors.remote_lm import RemoteLM

__all__ = ["ModelActor", "create_model_actor", "RemoteLM"]
