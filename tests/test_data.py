"""The shipped data: texts and their vocabulary refuse what they do not hold, as library errors."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold.data import Vocabulary, load_text


def test_a_vocabulary_round_trips_its_text():
    text = load_text()[:500]
    vocab = Vocabulary(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.decode(np.array([0, 1])) == "".join(vocab.symbols[:2])


@pytest.mark.parametrize("ids", [[99], [-1], [1.5], ["a"], [True]])
def test_decoding_an_id_outside_the_vocabulary_is_a_library_value_error(ids):
    vocab = Vocabulary("abc")
    with pytest.raises(uf.UnfoldValueError, match=r"not one of the vocabulary's 0…2"):
        vocab.decode(ids)


def test_unknown_characters_and_texts_are_named():
    with pytest.raises(uf.UnfoldKeyError, match="'z' is not in the vocabulary") as info:
        Vocabulary("abc").encode("abz")
    assert isinstance(info.value, KeyError)
    with pytest.raises(uf.UnfoldValueError, match="no shipped text 'hamlet'"):
        load_text("hamlet")
