"""What a served agent asks of a local model's tokenizer (the TextGenerator side of memorylab.models.protocol):
token counts, texts clipped to a token budget, and the single token each label is read as. Written once for
every backend that has `encode` and `decode` (LogitsLM, the vllm backend)."""

from __future__ import annotations

from typing import Sequence


class TokenBudget:
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode(texts)]

    def clip(self, texts: Sequence[str], max_tokens: int, keep: str = "start") -> list[str]:
        """Each text cut to at most `max_tokens` tokens, keeping its start or (keep="end") its end; a text that
        fits comes back unchanged (not re-decoded)."""
        encoded = self.encode(texts)
        if all(len(ids) <= max_tokens for ids in encoded):
            return list(texts)
        cut = [ids if len(ids) <= max_tokens else ids[:max_tokens] if keep == "start" else ids[len(ids) - max_tokens:]
               for ids in encoded]
        return [text if len(ids) <= max_tokens else clipped
                for text, ids, clipped in zip(texts, encoded, self.decode(cut))]

    def label_ids(self, prompt: str, labels: Sequence[str]) -> list[int]:
        """The token id of each label where the model reads it, right after the prompt's last line. A label
        that the tokenizer splits, or merges with that line's end, has no single next-token probability."""
        context = prompt.rsplit("\n", 1)[-1]
        key = (context, tuple(labels))
        cache = self.__dict__.setdefault("_label_cache", {})
        if key not in cache:
            base = self.encode([context])[0]
            found = []
            for label, tokens in zip(labels, self.encode([context + label for label in labels])):
                if len(tokens) != len(base) + 1 or list(tokens[: len(base)]) != list(base):
                    raise ValueError(f"label {label!r} is not a single token after {context!r} for this model's "
                                     "tokenizer, so its probability cannot be read")
                found.append(int(tokens[-1]))
            if len(set(found)) != len(found):
                raise ValueError("the labels' token ids are not distinct for this model's tokenizer")
            cache[key] = found
        return cache[key]
