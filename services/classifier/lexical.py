"""The wording of a message, read next to its sentence embedding.

A sentence embedding places a message by its meaning and smooths over its exact words; yet the
words often settle a tag: the name of a fee, "validation letter", "keeps calling me", "not
received", a misspelling or a slang insult. :class:`LexicalHeads` holds one TF-IDF vocabulary of
word 1-2-grams and character 3-5-grams (within words) fitted on the training texts, and one
class-weighted logistic regression per tag over it. The model averages each tag's probabilities
with its embedding head's (:func:`blend`), with the weight the model was trained with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.errors import ConfigurationError

#: Characters of a text the vocabulary reads; the rest only costs time.
LEXICAL_CHARS = 10_000
WORD_FEATURES = 50_000
CHAR_FEATURES = 50_000
#: Below this many training texts every n-gram is kept; above it, one seen once is noise.
MIN_TEXTS_FOR_PRUNING = 1_000

Probabilities = npt.NDArray[np.float64]


class LexicalError(ConfigurationError):
    """Lexical heads that do not match the embedding heads they are blended with."""


def fit_vectorizer(texts: Sequence[str]) -> tuple[Any, Any]:
    """A word and character n-gram TF-IDF vocabulary fitted on the texts, and the texts'
    features (read once for both)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    prune = len(texts) >= MIN_TEXTS_FOR_PRUNING
    shared: dict[str, Any] = {"sublinear_tf": True, "strip_accents": "unicode", "dtype": np.float32}
    words = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2 if prune else 1, max_features=WORD_FEATURES, **shared
    )
    chars = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        min_df=3 if prune else 1,
        max_features=CHAR_FEATURES,
        **shared,
    )
    union = FeatureUnion([("words", words), ("chars", chars)])
    features = union.fit_transform([clip(text) for text in texts])
    for _, vectorizer in union.transformer_list:
        # The terms cut by min_df and max_features are kept for introspection only and can
        # weigh more than the vocabulary itself.
        if hasattr(vectorizer, "stop_words_"):
            delattr(vectorizer, "stop_words_")
    return union, features


def fit_lexical_head(features: Any, y: Sequence[str], *, c: float, seed: int) -> Any:
    """A class-weighted logistic regression over the n-gram features."""
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
    head.fit(features, np.asarray(y))
    # Single precision halves the artifact and changes no decision.
    head.coef_ = head.coef_.astype(np.float32)
    head.intercept_ = head.intercept_.astype(np.float32)
    return head


def clip(text: str) -> str:
    """The part of a text the vocabulary reads."""
    return text[:LEXICAL_CHARS]


def blend(embedding: Probabilities, lexical: Probabilities, weight: float) -> Probabilities:
    """The weighted mean of two probability matrices over the same classes."""
    mixed: Probabilities = (1.0 - weight) * embedding + weight * lexical
    return mixed


@dataclass(frozen=True, slots=True)
class LexicalHeads:
    """One n-gram vocabulary and a head per tag over it, blended with ``weight``."""

    vectorizer: Any
    heads: Mapping[str, Any]
    weight: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise LexicalError(f"the lexical weight must be within [0, 1]; got {self.weight}")

    def check_classes(self, embedding_heads: Mapping[str, Any]) -> None:
        """Refuse heads whose classes differ from the embedding heads' of the same tag."""
        for tag, head in self.heads.items():
            if tag not in embedding_heads:
                raise LexicalError(f"a lexical head for {tag!r} has no embedding head")
            ours = [str(label) for label in head.classes_]
            theirs = [str(label) for label in embedding_heads[tag].classes_]
            if ours != theirs:
                raise LexicalError(
                    f"{tag}: the lexical head's labels {ours} differ from the embedding "
                    f"head's {theirs}; retrain the model with `triage train`"
                )

    def transform(self, texts: Sequence[str]) -> Any:
        """The n-gram features of the texts (a sparse matrix)."""
        return self.vectorizer.transform([clip(text) for text in texts])

    def blended(self, tag: str, embedding: Probabilities, features: Any) -> Probabilities:
        """A tag's embedding-head probabilities blended with its lexical head's."""
        head = self.heads.get(tag)
        if head is None or self.weight == 0.0:
            return embedding
        return blend(embedding, head.predict_proba(features), self.weight)
