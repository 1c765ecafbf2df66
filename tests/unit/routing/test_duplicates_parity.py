"""Duplicate detection computes its TF-IDF cosines with numpy alone; scikit-learn, which it
used before, is the reference here: the same arithmetic on the same texts, and the same
decisions on the hand-made calibration pairs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer

from services.routing.tickets import duplicates
from services.routing.tickets.duplicates import Similarity, prepared_text, report_text


@pytest.fixture(scope="module")
def reference_texts() -> list[str]:
    return duplicates.corpus_texts()


@pytest.fixture(scope="module")
def similarity(reference_texts) -> Similarity:
    return Similarity(reference_texts)


class HashedReference:
    """Duplicate detection as it was: scikit-learn's hashing vectorisers (2²⁰ columns) and
    TF-IDF transformers, IDF from the same corpus texts."""

    def __init__(self, reference: list[str]):
        texts = [prepared_text(t) for t in reference]
        self.hasher = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5),
                                        n_features=2**20, alternate_sign=False, norm=None,
                                        lowercase=False)
        self.tfidf = TfidfTransformer(sublinear_tf=True).fit(self.hasher.transform(texts))

    def similarity(self, a: str, b: str) -> float:
        vectors = self.tfidf.transform(self.hasher.transform([prepared_text(a),
                                                             prepared_text(b)]))
        return float((vectors[0] @ vectors[1].T).toarray()[0, 0])


def test_the_cosines_are_scikit_learns_tf_idf_exactly(reference_texts):
    """With every term in the reference (no term unseen, nothing hashed together), the
    character and word vectors are TfidfVectorizer's to rounding."""
    texts = [prepared_text(t) for t in reference_texts[::10]]
    ours = Similarity(reference_texts[::10])
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=False,
                            sublinear_tf=True).fit_transform(texts)
    np.testing.assert_allclose(ours.matrix(texts), (chars @ chars.T).toarray(), atol=1e-9)

    vectorizer = TfidfVectorizer(token_pattern=r"\S+", lowercase=False, sublinear_tf=True)
    words = vectorizer.fit_transform(texts).tocsr()
    terms = vectorizer.get_feature_names_out()
    for row, new in enumerate(ours.prepare_many(reference_texts[::10])):
        span = slice(words.indptr[row], words.indptr[row + 1])
        expected = dict(zip((hash(str(t)) for t in terms[words.indices[span]]),
                            words.data[span].tolist(), strict=True))
        got = dict(zip(new.word_columns.tolist(), new.word_weights.tolist(), strict=True))
        assert got.keys() == expected.keys()
        # Kept as float32 in the cache of prepared tickets.
        assert np.allclose([got[k] for k in expected], list(expected.values()), atol=1e-7)


def test_the_hand_made_pairs_land_where_they_did_with_scikit_learn(similarity,
                                                                    reference_texts):
    old = HashedReference(reference_texts)
    pairs = duplicates.read_pairs()
    changed = []
    for pair in pairs:
        a = report_text(pair["a"]["title"], pair["a"]["body"])
        b = report_text(pair["b"]["title"], pair["b"]["body"])
        before = old.similarity(a, b)
        score, outcome = duplicates.pair_outcome(similarity, pair)
        with_old_score = duplicates.pair_outcome(_Fixed(before), pair)[1]
        # 20-bit hashes put 3-4% of a text's n-grams into a column shared with another
        # n-gram of the corpus; 64-bit ones none: the scores move by thousandths.
        assert score == pytest.approx(before, abs=0.01), pair["note"]
        if outcome != with_old_score:
            changed.append((pair["note"], before, score))
    assert len(pairs) >= 40
    assert changed == []


class _Fixed:
    """A similarity that answers one score, to judge a pair by the old score."""

    def __init__(self, score: float):
        self.score = score

    def similarity(self, a: str, b: str) -> float:
        return self.score
