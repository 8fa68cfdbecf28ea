"""Supersense classification of WordNet 3.0 glosses (Debian's wordnet-base)."""

from collections import Counter

import pytest

from nteach.attention import wordnet
from nteach.errors import UserError

pytestmark = pytest.mark.skipif(not (wordnet.WORDNET / "data.noun").is_file(),
                                reason="needs apt-get install wordnet-base")

TOP_NOUNS = [("noun.artifact", 11398), ("noun.person", 10574), ("noun.plant", 7593), ("noun.act", 6399),
             ("noun.animal", 6027), ("noun.communication", 5325), ("noun.state", 3422),
             ("noun.location", 3127)]
TOP_VERBS = [("verb.change", 1847), ("verb.contact", 1750), ("verb.communication", 1221),
             ("verb.motion", 1092), ("verb.social", 941), ("verb.possession", 669), ("verb.stative", 593),
             ("verb.cognition", 561)]


def ranked(labels):
    return sorted(Counter(labels).items(), key=lambda item: (-item[1], item[0]))


def test_lexnames_table_has_the_45_files_of_the_man_page():
    assert len(wordnet.LEXNAMES) == 45
    assert wordnet.LEXNAMES[3] == "noun.Tops" and wordnet.LEXNAMES[5] == "noun.animal"
    assert wordnet.LEXNAMES[29] == "verb.body" and wordnet.LEXNAMES[44] == "adj.ppl"


def test_every_synset_is_parsed_and_the_license_is_skipped():
    assert len(wordnet.synsets("noun")) == 82115
    assert len(wordnet.synsets("verb")) == 13767
    assert wordnet.synsets("noun")[0][:2] == ("00001740", "noun.Tops")


def test_known_synsets_have_their_gloss_and_supersense():
    nouns = {offset: (sense, gloss) for offset, sense, gloss in wordnet.synsets("noun")}
    assert nouns["00217499"] == ("noun.act", "an act that has disastrous consequences")
    # 'kill': the usage example "the pilot reported two kills during the mission" is dropped.
    assert nouns["00217593"] == ("noun.act", "the destruction of an enemy plane or ship or tank or missile")


def test_usage_examples_after_semicolon_colon_or_comma_are_dropped():
    assert wordnet.clean_gloss('a complete extent or range: "a face that expressed a gamut"  ') == \
        "a complete extent or range"
    assert wordnet.clean_gloss('move with force, "He pushed the table"; "push"') == "move with force"
    assert wordnet.clean_gloss('promise of reward as in "carrot and stick"; "used the carrot"') == \
        'promise of reward as in "carrot and stick"'


def test_top_noun_classes_and_their_counts():
    texts, labels = wordnet.supersense_examples("noun")
    assert ranked(labels) == TOP_NOUNS
    assert len(texts) == len(labels) == sum(count for _, count in TOP_NOUNS)
    assert min(len(text.split()) for text in texts) >= 4
    assert not any('; "' in text for text in texts)
    assert len(set(texts)) == len(texts)  # "a genus of bacteria" (11 synsets) once


def test_verbs_work_too():
    texts, labels = wordnet.supersense_examples("verb")
    assert ranked(labels) == TOP_VERBS
    verbs = {offset: (sense, gloss) for offset, sense, gloss in wordnet.synsets("verb")}
    # Verb lines carry frame fields before the '|': 'hit_the_dirt', 'hit_the_deck'.
    assert verbs["01833735"] == ("verb.motion", "fall or drop suddenly, usually to evade some danger")
    assert "fall or drop suddenly, usually to evade some danger" in texts


def test_per_class_cap_spreads_over_the_file_and_is_deterministic():
    texts, labels = wordnet.supersense_examples("noun", classes=3, per_class=50)
    assert Counter(labels) == {"noun.artifact": 50, "noun.person": 50, "noun.plant": 50}
    assert (texts, labels) == wordnet.supersense_examples("noun", classes=3, per_class=50)
    full_texts, full_labels = wordnet.supersense_examples("noun", classes=3)
    plants = [text for text, label in zip(full_texts, full_labels) if label == "noun.plant"]
    kept = [text for text, label in zip(texts, labels) if label == "noun.plant"]
    assert kept == [plants[i * len(plants) // 50] for i in range(50)]  # every k-th, not the first 50


def test_balanced_split_is_disjoint_and_seeded():
    train, validation, names = wordnet.supersense_split("noun", 8, 300, 50, seed=1)
    assert names == sorted(name for name, _ in TOP_NOUNS)
    assert len(train[0]) == len(train[1]) == 8 * 300
    assert len(validation[0]) == len(validation[1]) == 8 * 50
    assert Counter(train[1]) == {label: 300 for label in range(8)}
    assert Counter(validation[1]) == {label: 50 for label in range(8)}
    assert not set(train[0]) & set(validation[0])
    assert wordnet.supersense_split("noun", 8, 300, 50, seed=1) == (train, validation, names)
    assert wordnet.supersense_split("noun", 8, 300, 50, seed=2)[0] != train


def test_too_many_per_class_is_a_one_line_error():
    with pytest.raises(UserError, match="verb.cognition has 561 glosses") as error:
        wordnet.supersense_split("verb", 8, 500, 100, seed=0)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="cannot keep 9"):
        wordnet.supersense_examples("adj", classes=9)


def test_missing_wordnet_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(wordnet, "WORDNET", tmp_path)
    with pytest.raises(UserError, match="WordNet is missing: apt-get install wordnet-base"):
        wordnet.synsets("noun")
