"""`kind: memorization`: run.py trains and measures, report.py writes what it found."""
