"""Word pieces for free-text slots: a BPE vocabulary trained on the seeds' own text.

Spelled one character at a time, a small diffusion model writes letter soup ("Hargeafrll"); spelled
in pieces that the seeds' text is made of ("Chic", "o", " Municipal"), it composes real words in
real order. The vocabulary is trained with the ``tokenizers`` library's BPE trainer on every free-text
seed value; spaces stay attached to the word that follows them, so a value is exactly the
concatenation of its pieces. Single characters stay in the canvas vocabulary too, so any text the
slot's language allows can still be written (a value the pieces cannot spell exactly falls back to
characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_FREQUENCY = 2  # a merge must occur at least twice in the seeds' text
MAX_PIECE_CHARS = 24


@dataclass
class TextPieces:
    """The trained pieces (multi-character strings only; single characters live in the canvas)."""

    pieces: list[str]
    vocab_size: int

    def __post_init__(self) -> None:
        self._tok = None
        self._known = set(self.pieces)

    def _tokenizer(self):
        if self._tok is None:
            from tokenizers import Tokenizer, models, pre_tokenizers

            vocab = {p: i for i, p in enumerate(self.pieces)}
            chars = sorted({ch for p in self.pieces for ch in p})
            for ch in chars:
                vocab.setdefault(ch, len(vocab))
            # A greedy longest-match segmentation over the trained pieces (WordPiece-style without
            # continuation marks) is exact and deterministic; BPE merges are only needed to find them.
            tok = Tokenizer(
                models.WordPiece(
                    vocab=vocab,
                    unk_token=chars[0] if chars else "[UNK]",
                    continuing_subword_prefix="",
                    max_input_chars_per_word=200,
                )
            )
            tok.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_next")
            self._tok = tok
        return self._tok

    def split(self, text: str) -> list[str]:
        """``text`` as pieces and single characters whose concatenation is exactly ``text``."""
        if not self.pieces or not text:
            return list(text)
        enc = self._tokenizer().encode(text)
        out: list[str] = []
        for a, b in enc.offsets:
            part = text[a:b]
            # a word the pieces cannot spell comes back whole (as the unknown token): spell it by characters
            out += [part] if len(part) == 1 or part in self._known else list(part)
        return out if "".join(out) == text else list(text)

    def __getstate__(self) -> dict:
        return {"pieces": self.pieces, "vocab_size": self.vocab_size}

    def __setstate__(self, state: dict) -> None:
        self.pieces, self.vocab_size = state["pieces"], state["vocab_size"]
        self._tok = None
        self._known = set(self.pieces)


def train_pieces(texts: Iterable[str], vocab_size: int = 400) -> TextPieces:
    """BPE pieces of ``texts`` (at most ``vocab_size`` entries including single characters)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    texts = [t for t in texts if t]
    if not texts or vocab_size <= 0:
        return TextPieces([], vocab_size)
    alphabet = sorted({ch for t in texts for ch in t})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, len(alphabet) + 1),
        min_frequency=MIN_FREQUENCY,
        show_progress=False,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
    )
    tok.train_from_iterator(texts, trainer)
    pieces = sorted((p for p in tok.get_vocab() if 1 < len(p) <= MAX_PIECE_CHARS), key=lambda p: (-len(p), p))
    return TextPieces(pieces, vocab_size)


def longest_split(pieces: TextPieces, values: Sequence[str]) -> int:
    """The most pieces any of ``values`` needs (the slot's width in positions)."""
    return max((len(pieces.split(v)) for v in values), default=1)
