"""`kind: memory_agent_eval`: run.py serves the agent and asks it (probes.py), report.py writes what it found."""
