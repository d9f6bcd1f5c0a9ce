"""Decoding loops over next-token logits (greedy, sampling); ULD and speculative decoding build on them."""

from memorylab.decoding.loop import decode, stop_token_ids

__all__ = ["decode", "stop_token_ids"]
