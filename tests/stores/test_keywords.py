"""Keyword terms: what every store indexes and matches (crossmodal.stores.keywords)."""

from __future__ import annotations

import pytest

from crossmodal.stores.keywords import bm25_scores, document_terms, idf, query_terms, split_name, words


def test_words_fold_case_accents_and_english_endings() -> None:
    assert words("Café CATS Running boxes stopped cities") == ["cafe", "cat", "run", "box", "stop", "city"]
    assert words("a-b foo:bar under_score") == ["a", "b", "foo", "bar", "under", "score"]


def test_chinese_is_indexed_as_characters_and_pairs_and_queried_by_pairs() -> None:
    assert words("我爱北京") == ["我", "爱", "北", "京", "我爱", "爱北", "北京"]
    assert query_terms("北京") == ["北京"]
    assert query_terms("天安门") == ["天安", "安门"]
    assert query_terms("猫") == ["猫"] and "猫" in words("黑猫")
    assert words("iPhone手机") == ["iphone", "手", "机", "手机"]


def test_file_names_count_whole_and_in_parts_with_their_folders() -> None:
    terms = split_name("trips/germany/IMG_2041-BerlinWall.jpg")
    assert set(terms) >= {"trip", "germany", "img", "2041", "berlinwall", "berlin", "wall", "jpg"}
    assert set(split_name("file:///data/DSC0001.png")) >= {"data", "dsc0001", "dsc", "0001", "png"}


def test_document_terms_by_modality() -> None:
    assert document_terms("text", "a cat", "a cat", {}) == ["a", "cat"]  # the reference is the text: once
    assert document_terms("text", "notes/cat.txt", "a cat", {}) == ["a", "cat", "note", "cat", "txt"]
    assert "dog" in document_terms("pair", "x.jpg", "a dog", {})
    meta = {"title": "Zanzibar", "tags": ["spice", 7, None, True], "other": "hidden"}
    assert document_terms("image", "x.jpg", None, meta, ["title", "tags"]) == ["x", "jpg", "zanzibar", "spice", "7"]


def test_bm25_by_hand() -> None:
    docs = [["cat", "dog"], ["cat"], ["bird", "bird", "fish", "cow"]]
    avg = 7 / 3
    scores = bm25_scores(["bird", "cat"], docs)
    w_cat, w_bird = idf(3, 2), idf(3, 1)
    assert scores[0] == pytest.approx(w_cat * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / avg)))
    assert scores[1] == pytest.approx(w_cat * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 1 / avg)))
    assert scores[2] == pytest.approx(w_bird * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 4 / avg)))
    assert bm25_scores(["zebra"], docs) == [0, 0, 0]
