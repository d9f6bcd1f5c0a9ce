"""From a message to candidate facts: sentences, (subject, attribute, value) triples, and retractions.

Deterministic and dependency-free on purpose: this is what the memory policy falls back on whenever no
capable LLM decides, so it must never lose a sentence that states something. The rules, in order:

1. Split into sentences (".", "!", "?" or a line break; common abbreviations such as "Dr." do not end one).
2. A retraction ("forget that ...", "that's no longer true: ...", "<subject> no longer ...", "<subject>
   doesn't ... anymore", "delete the memory about ...") becomes a `Retraction`.
3. Small talk (greetings, thanks, questions, requests to the assistant, "ok thanks") is no fact.
4. Discourse prefixes ("Actually,", "Remember that", "Correction:", "More about X:") are cut off; what is left
   is a `Fact`, stored as that text, with (subject, attribute, value) when one of these patterns matches:
   every world template (data/templates.py), the CHANGE_TEMPLATES below (how a later change of the same
   attribute is said), first-person and generic verbs with a single-valued meaning (VERB_ATTRIBUTES), and
   "<subject>'s <attribute> is <value>". "now", "actually", "currently" inside a sentence are ignored for
   matching, so "X now works for Y" is the employer template. A sentence that states something but matches
   no pattern is still a Fact, only without a key: it can be a duplicate but never a conflict.

The subject is the name as written, or "user" for first-person facts (mem0's convention: memories are about
the user unless they name someone). Attributes are the world's names where one applies (employer,
occupation, ...), so "X moved to a job at Y" and "X works for Y" conflict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from memorylab.data.templates import FACT_TEMPLATES

# How a change of an attribute is said, beyond the world's own templates (which already match a change
# said with "Actually, ..." or "now"). "residence" is not a world attribute: people in conversation move.
CHANGE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "residence": ("{name} lives in {value}.", "{name} moved to {value}.", "{name} relocated to {value}.",
                  "{name} is living in {value}.", "{name} resides in {value}.", "{name} is based in {value}."),
    "employer": ("{name} works at {value}.", "{name} joined {value}.", "{name} started working at {value}.",
                 "{name} started working for {value}.", "{name} got a job at {value}.",
                 "{name} took a job at {value}.", "{name} moved to a job at {value}.",
                 "{name} switched jobs to {value}."),
    "occupation": ("{name} became {a} {value}.", "{name} started working as {a} {value}.",
                   "{name} changed careers to {value}.", "{name} is working as {a} {value}."),
    "hobby": ("{name} took up {value}.", "{name} picked up {value}.", "{name} got into {value}.",
              "{name}'s new hobby is {value}."),
    "education": ("{name} transferred to the {value}.", "{name} enrolled at the {value}."),
    "nickname": ("We call {name} {value}.", "{name} is also known as {value}.", "{name} goes by {value}.",
                 "{name}'s nickname is {value}."),
}

# First-person and generic relations with one value at a time (a person lives in one city). Verbs with many
# values ("likes", "visited", "bought") get no attribute: a second one is a new fact, not a conflict.
VERB_ATTRIBUTES: dict[str, str] = {
    "live in": "residence", "lives in": "residence", "moved to": "residence", "am living in": "residence",
    "am based in": "residence", "work for": "employer", "work at": "employer", "am employed by": "employer",
    "joined": "employer", "work as": "occupation", "am working as": "occupation", "became": "occupation",
    "was born in": "birthplace", "was born on": "birth_date", "studied at": "education",
    "graduated from": "education", "study at": "education", "am married to": "spouse",
    "is married to": "spouse", "am dating": "partner", "is dating": "partner", "am called": "name",
    "go by": "nickname", "drive": "car", "drives": "car", "took up": "hobby",
}

# "<subject>'s <noun> is <value>": nouns that name a world attribute; any other noun is its own attribute.
ATTRIBUTE_ALIASES: dict[str, str] = {
    "birthday": "birth_date", "date of birth": "birth_date", "hometown": "birthplace", "birthplace": "birthplace",
    "mom": "mother", "mum": "mother", "dad": "father", "job": "occupation", "profession": "occupation",
    "company": "employer", "workplace": "employer", "hobby": "hobby", "favorite hobby": "hobby",
    "alma mater": "education", "home": "residence", "city": "residence", "wife": "spouse", "husband": "spouse",
}

_NAME = r"(?:[A-Z][\w'’.\-]*(?:\s+(?:[A-Z][\w'’.\-]*|van|von|de|del|der|da|di|la|le|du|al|bin)){0,4})"
# Titles before a name never end a sentence; "Inc." or "etc." often do, so they are not listed.
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
_INNER_ADVERBS = re.compile(r"\s+(?:now|actually|currently|still)\b(?=\s)", re.IGNORECASE)
_PREFIXES = re.compile(
    r"^(?:(?:actually|oh|and|also|so|well|btw|by the way|fyi|for your information|just so you know|"
    r"now|correction|update|remember|please remember|note|please note|keep in mind|don't forget)"
    r"(?:\s+that)?\s*[,:;\-–]?\s+|(?:[A-Z][^:.!?]{0,60}):\s+(?=\S))", re.IGNORECASE)
_SMALL_TALK_WORDS = frozenset(
    "hi hello hey there thanks thank you ok okay great good morning afternoon evening night bye goodbye "
    "see later soon talk to that is all for now cool nice sure yes no yeah yep nope alright fine perfect "
    "awesome got it sounds much a lot very well lol hmm please welcome have day again right wow oh ah "
    "and so will do noted understood cheers take care i you too me".split())
# A question: a wh-word followed by a verb ("Where does ...", "What's ..."), or a sentence opening with an
# auxiliary ("Is Jo ...", "Can you ..."). "When I was young, I lived in Rome." stays a statement.
_QUESTION_START = re.compile(
    r"^(?:(?:what|where|when|who|whom|whose|why|how|which)(?:'s|\s+(?:is|are|was|were|do|does|did|can|could|"
    r"will|would|should|has|have|had|am|about|many|much|old|long|often)\b)|(?:do|does|did|can|could|would|will|"
    r"should|shall|is|are|am|was|were|has|have|had)\s+(?:I|you|he|she|it|we|they|there|[A-Z][\w'-]*)\b)",
    re.IGNORECASE)
# Requests to the assistant are not facts about anyone.
_REQUEST_START = re.compile(r"^(?:please\s+)?(?:tell|remind|show|give|help|let|find|list|search)\s+(?:me|us)?\b",
                            re.IGNORECASE)
# Words that open a sentence but name nobody: a fact that starts with one gets no subject (no coreference).
_NOT_SUBJECTS = frozenset("The This That These Those It He She They We You There Here A An Our Your His Her Their "
                          "Its Everyone Someone Somebody Nobody Everybody One Today Yesterday Tomorrow When If "
                          "After Before Since While Because Although Once Then But And So Yes No Well Now Also Last Next".split())
_CONTRACTIONS = ((r"\bI'm\b", "I am"), (r"\bI've\b", "I have"), (r"\bdoesn't\b", "does not"),
                 (r"\bdon't\b", "do not"), (r"\bisn't\b", "is not"), (r"\baren't\b", "are not"),
                 (r"\bwasn't\b", "was not"), (r"\bthat's\b", "that is"), (r"\bit's\b", "it is"),
                 (r"’", "'"))


@dataclass(frozen=True)
class Fact:
    text: str  # the sentence to store, discourse prefixes cut off
    subject: Optional[str] = None
    attribute: Optional[str] = None
    value: Optional[str] = None

    @property
    def key(self) -> Optional[tuple[str, str]]:
        return (self.subject, self.attribute) if self.subject and self.attribute else None


@dataclass(frozen=True)
class Retraction:
    text: str  # the sentence as said
    target: str  # what is to be forgotten, as a statement or phrase (searched for by similarity)
    subject: Optional[str] = None
    attribute: Optional[str] = None
    value: Optional[str] = None
    everything: bool = False  # "forget everything about X": every memory whose subject is X


Candidate = Union[Fact, Retraction]


def split_sentences(text: str) -> list[str]:
    pieces: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        # Rejoin after an abbreviation ("Dr. Smith"): the split point followed a known short word.
        if pieces and re.search(r"\b(?:%s)\.$" % "|".join(_ABBREVIATIONS), pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {part}"
        else:
            pieces.append(part)
    return pieces


def extract(text: str) -> list[Candidate]:
    """Every fact and retraction of a message, in order; small talk is left out."""
    out = []
    for sentence in split_sentences(text):
        candidate = parse_sentence(sentence)
        if candidate is not None:
            out.append(candidate)
    return out


def parse_sentence(sentence: str) -> Optional[Candidate]:
    sentence = " ".join(sentence.split())
    for form in (_strip_prefixes(sentence), sentence):  # "Actually, forget ..." and "That's no longer true: ..."
        retraction = _retraction(form)
        if retraction is False:
            return None
        if retraction is not None:
            return retraction
    if is_small_talk(sentence):
        return None
    stated = _strip_prefixes(sentence)
    if is_small_talk(stated):
        return None
    return parse_fact(stated)


def parse_fact(statement: str) -> Fact:
    """The statement as a Fact, with its (subject, attribute, value) when a pattern matches."""
    text = _capitalize(statement.strip())
    plain = _normalize(text)
    for attribute, regex in _TEMPLATE_REGEXES:
        m = regex.match(plain)
        if m:
            return _keyed(text, m.group("name"), attribute, m.group("value"))
    m = _POSSESSIVE.match(plain)
    if m:
        return _keyed(text, m.group("name"), _attribute_of(m.group("attr")), m.group("value"))
    m = _VERB.match(plain)
    if m:
        return _keyed(text, m.group("name"), VERB_ATTRIBUTES[m.group("verb").lower()], m.group("value"))
    m = _ANY_SUBJECT.match(plain)  # a named subject with an unknown verb: no conflict key, but a subject
    return Fact(text, _subject(m.group("name")) if m else None)


def _keyed(text: str, name: Optional[str], attribute: str, value: str) -> Fact:
    subject = _subject(name)
    if subject is None:  # "It won the Golden Prize": about someone, but nobody we can name
        return Fact(text)
    return Fact(text, subject, attribute, _clean_value(value))


def _attribute_of(noun: str) -> str:
    """A possessive's noun as an attribute: a world name where one applies ("hometown" -> birthplace)."""
    noun = " ".join(noun.lower().split())
    if noun not in ATTRIBUTE_ALIASES:
        noun = re.sub(r"^(?:new|current|latest)\s+(?=\w)", "", noun)  # "new job" is the same attribute as "job"
    return ATTRIBUTE_ALIASES.get(noun, noun.replace(" ", "_"))


def is_small_talk(sentence: str) -> bool:
    s = sentence.strip()
    if not s or s.endswith("?") or _QUESTION_START.match(s) or _REQUEST_START.match(s):
        return True
    words = re.findall(r"[a-z']+", s.lower())
    return len(words) < 2 or all(w in _SMALL_TALK_WORDS for w in words)


# -- retractions -------------------------------------------------------------------------------------------

_FORGET = re.compile(r"^(?:please\s+)?(?:forget|disregard)\s+(?:that\s+|about\s+)?(?P<rest>.+)$", re.IGNORECASE)
_NOT_TRUE = re.compile(
    r"^(?:that|this|it)(?:'s|\s+is)\s+(?:no\s+longer|not)\s+(?:true|the\s+case|correct|accurate|right|valid)"
    r"(?:\s+any\s?more)?\s*[:,;.!\-–]*\s*(?P<rest>.*)$", re.IGNORECASE)
_DELETE = re.compile(
    r"^(?:please\s+)?(?:delete|remove|erase|drop|clear)\s+(?:(?:the\s+|my\s+|all\s+|any\s+|your\s+|that\s+)?"
    r"(?:memory|memories|fact|facts|note|notes|entry|entries|record|records|info|information)\s+"
    r"(?:about|of|on|regarding|that|saying)\s+(?P<rest>.+)|(?P<all>(?:everything|all|what)\s+.+))$", re.IGNORECASE)
_NO_LONGER = re.compile(rf"^(?P<name>{_NAME}|I)\s+(?:(?P<aux>is|am|are|was|has|have)\s+)?no\s+longer\s+(?P<pred>.+)$")
_NOT_ANYMORE = re.compile(
    rf"^(?P<name>{_NAME}|I)\s+(?:(?:does|do)\s+not\s+(?P<verb>\w+)|(?P<aux>is|am|are)\s+not)\s+"
    r"(?P<pred>.+?)\s+any\s?more$")
_EVERYTHING = re.compile(r"^(?:everything|all|anything)\s+(?:you\s+know\s+|you\s+have\s+)?(?:about|on|of)\s+"
                         r"(?P<who>.+)$",
                         re.IGNORECASE)
_POSSESSIVE_PHRASE = re.compile(rf"^(?:the\s+)?(?:(?P<name>{_NAME})'s?|(?P<my>my))\s+(?P<attr>[a-z][a-z ]{{0,40}})$|"
                                rf"^(?:the\s+)?(?P<attr2>[a-z][a-z ]{{0,40}}?)\s+of\s+(?P<name2>{_NAME})$")


def _retraction(sentence: str) -> Union[Retraction, bool, None]:
    """A Retraction; False for one that names nothing ("forget it"); None when the sentence is none."""
    s = _expand(sentence.rstrip(".!"))
    for regex in (_FORGET, _NOT_TRUE, _DELETE):
        m = regex.match(s)
        if m:
            return _retraction_of(sentence, (m.group("rest") or m.groupdict().get("all") or "").strip())
    m = _NO_LONGER.match(s) or _NOT_ANYMORE.match(s)
    if m:
        verb = m.groupdict().get("verb")
        aux = m.group("aux")
        if verb:
            pred = f"{verb if m.group('name') == 'I' else _third_person(verb)} {m.group('pred')}"
        else:
            pred = f"{aux} {m.group('pred')}" if aux else m.group("pred")
        return _retraction_of(sentence, f"{m.group('name')} {pred}")
    return None


def _retraction_of(sentence: str, rest: str) -> Union[Retraction, bool]:
    rest = rest.strip().rstrip(".!")
    if not rest or rest.lower() in ("it", "that", "this", "about it", "about that"):
        return False  # a retraction that names nothing ("forget it"): no fact, and nothing to delete
    m = _EVERYTHING.match(rest)
    if m:
        who = m.group("who").strip()
        return Retraction(sentence, who, subject=_subject(who), everything=True)
    if re.fullmatch(_NAME, rest) and _subject(rest):
        return Retraction(sentence, rest, subject=_subject(rest), everything=True)  # "forget about Jo Doe"
    m = _POSSESSIVE_PHRASE.match(rest)
    if m:
        noun = (m.group("attr") or m.group("attr2")).strip().lower()
        name = m.group("name") or m.group("name2")  # None for "my ...", which _subject reads as the user
        return Retraction(sentence, _capitalize(rest), subject=_subject(name), attribute=_attribute_of(noun))
    fact = parse_fact(rest)
    return Retraction(sentence, fact.text, fact.subject, fact.attribute, fact.value)


# -- patterns --------------------------------------------------------------------------------------------

def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{name\}|\{value\}|\{a\} |\{a\})", template.rstrip("."))
    out = []
    for part in parts:
        if part == "{name}":
            out.append(rf"(?P<name>{_NAME})")
        elif part == "{value}":
            out.append(r"(?P<value>.+?)")
        elif part.startswith("{a}"):
            out.append(r"(?:(?i:an?)\s+)?")
        elif part:
            out.append(f"(?i:{re.escape(part)})")
    return re.compile("^" + "".join(out) + r"$")


# Most specific first (the longest literal text): "X moved to a job at Y" is an employer, not "X moved to Y".
_TEMPLATE_REGEXES: list[tuple[str, re.Pattern]] = [
    (attribute, _template_regex(t))
    for attribute, t in sorted(((a, t) for table in (FACT_TEMPLATES, CHANGE_TEMPLATES) for a, ts in table.items()
                                for t in ts), key=lambda at: -len(re.sub(r"\{\w+\}", "", at[1])))
]
_POSSESSIVE = re.compile(rf"^(?:(?P<name>{_NAME})'s|(?P<my>My))\s+(?P<attr>[a-z][a-z ]{{0,40}}?)\s+"
                         r"(?:is|are|was)\s+(?P<value>.+)$")
_VERB = re.compile(rf"^(?P<name>{_NAME}|I)\s+(?P<verb>%s)\s+(?P<value>.+)$"
                   % "|".join(sorted(map(re.escape, VERB_ATTRIBUTES), key=len, reverse=True)))
_ANY_SUBJECT = re.compile(rf"^(?P<name>{_NAME}|I)\s+[a-z]")


def _normalize(text: str) -> str:
    """The matching form: no final punctuation, contractions expanded, "now"/"actually" inside dropped."""
    return _INNER_ADVERBS.sub("", _expand(text.rstrip(" .!")))


def _expand(text: str) -> str:
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    return text


def _strip_prefixes(sentence: str) -> str:
    previous = None
    while previous != sentence:  # "Oh, and actually, ..." has several
        previous, sentence = sentence, _PREFIXES.sub("", sentence, count=1).strip()
    return _capitalize(sentence)


def _subject(name: Optional[str]) -> Optional[str]:
    if name is None:
        return "user"  # the "My ..." branch of the possessive pattern
    name = " ".join(name.split())
    if name in ("I", "My", "my", "Me", "me"):
        return "user"
    return None if name.split()[0] in _NOT_SUBJECTS else name


def _clean_value(value: str) -> str:
    value = value.strip().strip(",;:").strip()
    return re.sub(r"^(?:an?|the)\s+", "", value, flags=re.IGNORECASE)


def _third_person(verb: str) -> str:
    irregular = {"have": "has", "be": "is", "do": "does", "go": "goes"}
    if verb in irregular:
        return irregular[verb]
    if re.search(r"(?:s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def normalized_value(value: Optional[str]) -> str:
    """Values compare case- and punctuation-insensitively: "Acme Corp." and "acme corp" are the same."""
    return " ".join(re.sub(r"[^\w\s]", " ", (value or "").casefold()).split())
