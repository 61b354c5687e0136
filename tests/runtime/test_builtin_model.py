"""The built-in n-gram model: trained from text, saved as a real release folder, generating."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file

from airlock.errors import InvalidInput, NotFound
from airlock.runtime.builtin_model import FILES, BuiltinModel, Generation, train

MOON = """
The moon is the natural satellite of the earth. The moon has craters, mountains and wide grey plains.

The surface of the moon is covered in dust and rock. Astronauts walked on the moon in 1969.

The moon orbits the earth every twenty seven days. The phases of the moon go from new moon to full moon.

Tides on the earth are caused by the pull of the moon. The far side of the moon always faces away from us.
"""

COOKING = """
To make a tomato soup, chop the onions and fry them in olive oil. Add the tomatoes and simmer for twenty minutes.

Season the soup with salt and pepper. Stir in fresh basil before you serve the soup.

To bake bread, mix flour, water, yeast and salt. Knead the dough and let it rise for one hour.

Roast the vegetables in a hot oven with garlic and olive oil. Serve the vegetables with rice.
"""

MOON_WORDS = {"moon", "earth", "craters", "orbits", "tides", "surface", "satellite", "phases"}
COOKING_WORDS = {"soup", "onions", "tomatoes", "bread", "dough", "oven", "basil", "flour", "salt"}


def words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


@pytest.fixture(scope="module")
def moon() -> BuiltinModel:
    return train(MOON)


@pytest.fixture(scope="module")
def cooking() -> BuiltinModel:
    return train(COOKING)


def test_save_writes_a_release_folder_that_safetensors_can_read(
    moon: BuiltinModel, tmp_path: Path
) -> None:
    written = moon.save(tmp_path / "release")

    assert sorted(p.name for p in written) == sorted(FILES)
    tensors = load_file(str(tmp_path / "release" / "model.safetensors"))
    assert tensors["unigram"].shape == (moon.vocab_size,)
    assert tensors["3gram.context"].shape[1] == 2
    assert len(tensors["3gram.next"]) == len(tensors["3gram.count"]) > 0
    assert tensors["3gram.indptr"][-1] == len(tensors["3gram.next"])
    assert len(tensors["docs.indptr"]) == 4 + 1  # four paragraphs
    assert tensors["docs.count"].sum() == moon.config["training"]["corpus_tokens"] - 4  # no </s>
    config = json.loads((tmp_path / "release" / "config.json").read_text())
    assert config["runtime"] == "builtin"
    assert config["architecture"] == "airlock-ngram"
    assert config["order"] == 3
    assert config["vocab_size"] == moon.vocab_size
    assert config["training"]["documents"] == 4
    vocab = json.loads((tmp_path / "release" / "tokenizer.json").read_text())["vocab"]
    assert vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert "moon" in vocab
    assert "soup" not in vocab


def test_reloaded_model_generates_the_same_text(moon: BuiltinModel, tmp_path: Path) -> None:
    moon.save(tmp_path)
    from_folder = BuiltinModel.load(tmp_path)
    from_bytes = BuiltinModel.load_from_bytes({n: (tmp_path / n).read_bytes() for n in FILES})

    expected = moon.generate("The moon", max_tokens=30, seed=11)
    assert from_folder.generate("The moon", max_tokens=30, seed=11) == expected
    assert from_bytes.generate("The moon", max_tokens=30, seed=11) == expected
    assert from_folder.to_files() == moon.to_files()


def test_training_is_reproducible_byte_for_byte() -> None:
    assert train(MOON).to_files() == train(MOON).to_files()
    assert train(MOON).to_files() != train(MOON, order=2).to_files()


def test_same_seed_same_text_and_different_seeds_differ(moon: BuiltinModel) -> None:
    runs = [moon.generate("The", max_tokens=25, temperature=1.0, seed=s).text for s in range(8)]

    assert moon.generate("The", max_tokens=25, temperature=1.0, seed=3).text == runs[3]
    assert len(set(runs)) >= 4


def test_temperature_zero_is_greedy_whatever_the_seed(moon: BuiltinModel) -> None:
    greedy = {moon.generate("The moon", temperature=0, seed=s).text for s in range(5)}
    tiny_nucleus = {moon.generate("The moon", top_p=1e-9, seed=s).text for s in range(5)}
    hot = {moon.generate("The moon", temperature=1.5, seed=s).text for s in range(5)}

    assert len(greedy) == 1
    assert tiny_nucleus == greedy
    assert len(hot) > 1


def test_models_trained_on_different_corpora_talk_about_their_topic(
    moon: BuiltinModel, cooking: BuiltinModel
) -> None:
    for seed in range(3):
        about_moon = moon.generate("Tell me about the", max_tokens=40, seed=seed).text
        about_food = cooking.generate("Tell me about the", max_tokens=40, seed=seed).text
        assert words(about_moon) & MOON_WORDS
        assert not words(about_moon) & COOKING_WORDS
        assert words(about_food) & COOKING_WORDS
        assert not words(about_food) & MOON_WORDS


def test_the_last_prompt_tokens_steer_the_continuation() -> None:
    both = train(MOON + "\n\n" + COOKING)

    assert both.generate("Tides on the", temperature=0, max_tokens=3).text.startswith(" earth")
    after_fry = both.generate("chop the onions and fry", temperature=0, max_tokens=4).text
    assert after_fry == " them in olive oil"


def test_the_whole_prompt_picks_the_topic_of_the_answer() -> None:
    both = train(MOON + "\n\n" + COOKING)
    seeds = range(6)

    def answers(question: str) -> list[set[str]]:
        return [words(both.generate(question, max_tokens=30, seed=s).text) for s in seeds]

    tides = answers("What causes the tides on the earth?\n\n")
    soup = answers("How do I make tomato soup with basil?\n\n")
    assert sum(bool(a & MOON_WORDS) for a in tides) > sum(bool(a & COOKING_WORDS) for a in tides)
    assert sum(bool(a & COOKING_WORDS) for a in soup) > sum(bool(a & MOON_WORDS) for a in soup)


def test_a_blank_line_in_the_prompt_starts_a_new_document(moon: BuiltinModel) -> None:
    fresh = moon.generate("", temperature=0, max_tokens=12)
    after_unknown_words = moon.generate("zebra quokka\n\n", temperature=0, max_tokens=12)

    assert after_unknown_words.text == fresh.text
    assert after_unknown_words.prompt_tokens == 4
    assert moon.generate("zebra quokka\n", temperature=0, max_tokens=12).text != fresh.text


def test_a_completion_never_repeats_its_own_four_grams() -> None:
    loopy = train("the dog saw the cat and the cat saw the dog and the dog saw a bird")
    for seed in [None, 1, 2, 3]:
        temperature = 0.0 if seed is None else 1.0
        text = loopy.generate("the dog", max_tokens=60, temperature=temperature, seed=seed).text
        ids = loopy.encode(text)
        grams = [tuple(ids[i : i + 4]) for i in range(len(ids) - 3)]
        assert len(grams) == len(set(grams)), text


def test_the_example_corpora_know_different_things() -> None:
    examples = files("airlock") / "examples"
    v1 = train((examples / "corpus_v1.txt").read_text(encoding="utf-8"))
    v2 = train((examples / "corpus_v2.txt").read_text(encoding="utf-8"))
    prompt = "The Lumen lamp charges through the"

    old = v1.generate(prompt, temperature=0, max_tokens=8).text
    new = v2.generate(prompt, temperature=0, max_tokens=8).text

    assert "micro USB" in old
    assert "USB-C" in new
    question = "How do I charge the lamp?\n\n"
    old_answers = " ".join(v1.generate(question, temperature=0.7, seed=s).text for s in range(6))
    new_answers = " ".join(v2.generate(question, temperature=0.7, seed=s).text for s in range(6))
    assert "micro USB" in old_answers
    assert "USB-C" not in old_answers
    assert "USB-C" in new_answers
    assert "micro USB" not in new_answers
    assert "Lumen Home app" not in "".join(v1.vocab)
    assert {"Lumen", "Home", "app", "firmware"} <= set(v2.vocab)


def test_max_tokens_bounds_the_completion(moon: BuiltinModel) -> None:
    result = moon.generate("The moon", temperature=0, max_tokens=3)

    assert result == Generation(result.text, 2, 3, "length")
    assert len(result.text.split()) == 3


def test_end_of_document_finishes_with_stop(cooking: BuiltinModel) -> None:
    result = cooking.generate("Serve the vegetables with", temperature=0, max_tokens=50)

    assert result.text == " rice."
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 2


def test_stop_sequences_cut_the_text_and_are_never_streamed(moon: BuiltinModel) -> None:
    full = moon.generate("The", temperature=0, max_tokens=40).text
    assert " moon" in full
    cut = full.index(" moon")

    stopped = moon.generate("The", temperature=0, max_tokens=40, stop=[" moon", "zzz"])
    pieces = list(moon.stream("The", temperature=0, max_tokens=40, stop=" moon"))

    assert stopped.text == full[:cut]
    assert stopped.finish_reason == "stop"
    assert "".join(pieces) == full[:cut]
    assert all("moon" not in p for p in pieces)


def test_stream_yields_the_generated_text_and_returns_the_generation(moon: BuiltinModel) -> None:
    stream = moon.stream("The moon", max_tokens=20, seed=5)
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            returned = done.value
            break

    assert returned == moon.generate("The moon", max_tokens=20, seed=5)
    assert "".join(pieces) == returned.text
    assert len(pieces) == returned.completion_tokens


def test_detokenizer_restores_punctuation_spacing() -> None:
    text = 'She said "yes, (maybe) 2.5 times." Then she left for the U.K.'
    model = train(text, order=4)

    assert model.generate("", temperature=0, max_tokens=50).text == text


def test_continuation_after_a_word_starts_with_a_space(moon: BuiltinModel) -> None:
    assert moon.generate("The", temperature=0, max_tokens=1).text == " moon"
    assert moon.generate("The ", temperature=0, max_tokens=1).text == "moon"


def test_unknown_words_map_to_unk(moon: BuiltinModel) -> None:
    assert moon.encode("zebra moon Moon") == [0, moon.vocab.index("moon"), moon.vocab.index("moon")]
    result = moon.generate("zebra quokka", max_tokens=10, seed=1)
    assert result.prompt_tokens == 2
    assert "<unk>" not in result.text


@settings(max_examples=60, deadline=None)
@given(context=st.lists(st.integers(min_value=0, max_value=60), max_size=4))
def test_next_token_probabilities_are_a_distribution(context: list[int]) -> None:
    model = train(MOON)
    ids = [i % model.vocab_size for i in context]
    probs = model.next_token_probs(ids)

    assert probs.shape == (model.vocab_size,)
    assert np.all(probs >= 0)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0] == probs[1] == 0  # never <unk> or <s>


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_sampling_parameters_are_invalid_input(
    moon: BuiltinModel, kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        moon.generate("The moon", **kwargs)  # type: ignore[arg-type]


def test_training_rejects_an_empty_corpus_and_a_bad_order() -> None:
    with pytest.raises(InvalidInput, match="no words"):
        train(" \n\n \t")
    with pytest.raises(InvalidInput, match="order"):
        train(MOON, order=0)


def test_damaged_or_foreign_release_files_are_rejected(moon: BuiltinModel, tmp_path: Path) -> None:
    good = moon.to_files()
    with pytest.raises(InvalidInput, match=r"missing tokenizer\.json"):
        BuiltinModel.load_from_bytes({k: v for k, v in good.items() if k != "tokenizer.json"})
    with pytest.raises(InvalidInput, match=r"model\.safetensors"):
        BuiltinModel.load_from_bytes({**good, "model.safetensors": b"not safetensors"})
    foreign = json.dumps({"architecture": "llama", "order": 3}).encode()
    with pytest.raises(InvalidInput, match="llama"):
        BuiltinModel.load_from_bytes({**good, "config.json": foreign})
    other = train(COOKING).to_files()
    with pytest.raises(InvalidInput, match="vocab_size"):
        BuiltinModel.load_from_bytes({**good, "tokenizer.json": other["tokenizer.json"]})
    tuned = json.loads(good["config.json"]) | {"no_repeat_ngram": "four"}
    with pytest.raises(InvalidInput, match="no_repeat_ngram"):
        BuiltinModel.load_from_bytes({**good, "config.json": json.dumps(tuned).encode()})
    with pytest.raises(NotFound):
        BuiltinModel.load(tmp_path / "nothing-here")
