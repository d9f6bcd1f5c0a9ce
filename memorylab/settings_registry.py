"""A registry of settings classes by name (unlearning methods, attacks): a table of name -> "module:Class",
each class declaring its own name in a discriminator field, loaded lazily so that reading the table costs no
import of what the classes run."""

from __future__ import annotations

from typing import Annotated, Any, Mapping, Union

from pydantic import Field

from memorylab.lazy import load_target


def registered_class(table: Mapping[str, str], name: str, field: str, what: str) -> type:
    """The class registered as `name`; a ValueError naming the known ones, or the class if it calls itself
    otherwise in its `field`."""
    if name not in table:
        raise ValueError(f"unknown {what} '{name}'; expected one of: {', '.join(table)}")
    cls = load_target(table[name])
    declared = cls.model_fields[field].default
    if declared != name:
        raise ValueError(f"the {what} registered as '{name}' ({table[name]}) calls itself '{declared}'")
    return cls


def registered_union(table: Mapping[str, str], field: str, what: str) -> Any:
    """A scenario field type of one entry: a union of every registered class, told apart by `field`."""
    classes = tuple(registered_class(table, name, field, what) for name in table)
    return Annotated[Union[classes], Field(discriminator=field)]
