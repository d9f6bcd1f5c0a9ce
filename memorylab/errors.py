"""Errors meant for the user, as opposed to bugs."""


class MemorylabError(Exception):
    """An error whose message is a sentence for the user: the CLI prints `error: <message>`, no traceback."""


class GeneratorUnavailable(MemorylabError):
    """A served agent's generator server failed (memorylab/models/openai_generator.py): `status` is the HTTP
    status the agent answers with, 502 (it failed), 503 (unreachable, rate-limited) or 504 (too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class GeneratorRefused(GeneratorUnavailable):
    """The generator's server refused the request itself (HTTP 400, 413 or 422: a prompt over its context, a
    setting it does not take): a 502 for a client of the agent, but one the agent can work around where it has
    another way (a write with infer: true falls back to the deterministic policy, as with a local generator)."""


class TooManyFacts(MemorylabError):
    """An add request carries more facts than memory.policy.max_facts_per_add: refused before anything is
    embedded or written (a 422 naming `messages`)."""
