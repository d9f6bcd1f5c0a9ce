"""Scenario schema, one module per kind; `memorylab.scenario` gathers them."""
