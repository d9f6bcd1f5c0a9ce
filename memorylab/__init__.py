"""memorylab: study and operate the memory of language models."""
__version__ = "0.1.0"
