from transformers import AutoTokenizer

from memorylab.models.tokenizer import BOS, EOS, PAD, train_bpe_tokenizer

TRICKY = [
    "Alice was born in Paris.",
    " leading space, and  two  spaces;  tabs\tand\nnew lines!",
    "Punctuation: (a) [b] {c} -- 'quoted' \"double\" ?!... 3:45 p.m. 100% #1 @x",
    "Unicode: naïve café — Zürich, 東京",
    "",
]


def test_same_texts_give_same_vocab_and_ids(corpus):
    a = train_bpe_tokenizer(corpus, vocab_size=300)
    b = train_bpe_tokenizer(list(corpus), vocab_size=300)
    assert a.get_vocab() == b.get_vocab()
    assert a(TRICKY, add_special_tokens=False)["input_ids"] == b(TRICKY, add_special_tokens=False)["input_ids"]


def test_vocab_size_and_special_tokens(tokenizer):
    assert len(tokenizer) == 300
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    assert len(ids) == 3 and None not in ids
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, PAD)
    # Special tokens are atomic: their text is never split into byte pieces.
    assert tokenizer(BOS + "Alice" + EOS, add_special_tokens=False)["input_ids"][0] == tokenizer.bos_token_id
    assert tokenizer.padding_side == "left"


def test_round_trip_keeps_spaces_and_punctuation(tokenizer):
    ids = tokenizer(TRICKY, add_special_tokens=False)["input_ids"]
    assert ids[-1] == []
    assert tokenizer.batch_decode(ids) == TRICKY
    # Encoding adds nothing: the trainer and the backends prepend BOS themselves.
    assert tokenizer("Alice")["input_ids"] == tokenizer("Alice", add_special_tokens=False)["input_ids"]


def test_space_marks_a_mid_sentence_word(tokenizer):
    # "word" at the start of a text and " word" after a space are different tokens (as in GPT-2), so a
    # continuation that starts with a space is tokenized apart from its context.
    whole = tokenizer("was born in Paris", add_special_tokens=False)["input_ids"]
    ctx = tokenizer("was born in", add_special_tokens=False)["input_ids"]
    cont = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert whole == ctx + cont


def test_left_padding_puts_pad_before_text(tokenizer):
    batch = tokenizer(["Alice", "Alice was born in Paris"], padding=True, add_special_tokens=False)
    short, long_ = batch["input_ids"]
    assert len(short) == len(long_)
    assert short[0] == tokenizer.pad_token_id and short[-1] != tokenizer.pad_token_id
    assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1


def test_save_and_auto_load_give_identical_ids(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(TRICKY, add_special_tokens=False)["input_ids"] == tokenizer(TRICKY, add_special_tokens=False)["input_ids"]
    assert loaded.batch_decode(loaded(TRICKY, add_special_tokens=False)["input_ids"]) == TRICKY
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert loaded.padding_side == "left"
    assert len(loaded) == len(tokenizer)
