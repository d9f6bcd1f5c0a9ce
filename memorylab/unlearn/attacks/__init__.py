"""Attacks on unlearned models: each one a file, registered by name in registry.py (README, "Attacks")."""
