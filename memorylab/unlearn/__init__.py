"""Unlearning: make a trained model forget a forget set while keeping what a retain set covers.

method.py says what a method is, registry.py lists them by name, one file per method (grad_ascent, grad_diff,
npo, simnpo, rmu, uld); loop.py runs the loss methods. Nothing is imported here: the scenario schema reads the
settings classes without loading torch.
"""
