"""Ray Tune sweeps over scenarios: search spaces from YAML, trainables that call the runners, analysis."""
