"""Errors meant for the user, as opposed to bugs."""


class MemorylabError(Exception):
    """An error whose message is a sentence for the user: the CLI prints `error: <message>`, no traceback."""
