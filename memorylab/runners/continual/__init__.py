"""`kind: continual`: run.py continues the base model arm by arm, report.py writes what it found."""
