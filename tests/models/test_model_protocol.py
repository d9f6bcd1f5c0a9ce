import dataclasses

import pytest

from memorylab.models.protocol import GenerationParams


def test_defaults_are_greedy():
    p = GenerationParams()
    assert p.greedy and p.max_new_tokens == 32 and p.top_p == 1.0 and p.stop == () and p.seed is None
    assert not GenerationParams(temperature=0.7).greedy


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
    (dict(max_new_tokens=-3), "max_new_tokens must be >= 1"),
    (dict(temperature=-0.1), "temperature must be >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(stop=("\n", "")), "empty stop string would end every generation"),
])
def test_bad_values_fail_with_a_sentence(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenerationParams(**kwargs)


def test_edges_are_accepted():
    GenerationParams(max_new_tokens=1, temperature=0.0, top_p=1.0)
    GenerationParams(temperature=2.0, top_p=1e-6, seed=0)


def test_stop_is_a_tuple_of_strings():
    # A bare string is one stop string, not one per character ("END" must not stop at every "E").
    assert GenerationParams(stop="END").stop == ("END",)
    assert GenerationParams(stop=["\n", "."]).stop == ("\n", ".")
    hash(GenerationParams(stop=["\n"]))  # frozen and hashable: usable as a cache key
    with pytest.raises(TypeError, match="stop"):
        GenerationParams(stop=("\n", 3))


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GenerationParams().temperature = 1.0  # type: ignore[misc]
