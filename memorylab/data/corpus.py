"""The world's training corpora: what a target (forget + retain), a retrain reference (retain only) or a served
generator is trained on, and the texts a tiny model's tokenizer learns its merges from."""

from __future__ import annotations

from typing import Sequence

from memorylab.data.prompts import qa_document
from memorylab.data.world import World


def corpus(world: World, splits: Sequence[str]) -> list[str]:
    """Training documents of the splits: biographies, fact paraphrases, canaries (with forget), QA pairs."""
    return world.training_documents(splits) + [qa_document(q) for s in splits for q in world.qa(s)]


def tokenizer_texts(world: World) -> list[str]:
    """What a tiny model's BPE is trained on: the retain corpus plus every canary word (the secrets' and the
    candidates'), never forget texts. Merges learned from eight copies of a canary would make its secret
    cheaper to spell for every model, the retrain reference included, and inflate exposure across the board."""
    words = sorted({w for c in world.canaries for s in (c.secret, *c.candidates) for w in s.split()})
    return corpus(world, ["retain"]) + [" ".join(words)]
