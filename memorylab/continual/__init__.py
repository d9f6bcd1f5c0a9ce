"""Continual pre-training: LR re-warming and re-decaying schedules, replay mixing, retention probes, and the
training loop that measures forgetting and adaptation as it goes (the `continual` scenario kind)."""
