"""`kind: unlearning`: run.py is the recipe; the jobs, data, progress probes, shared setup and report beside it."""
