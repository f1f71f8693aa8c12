"""Chapter 6's raw material (`readheads.truth`): true and false statements built as the same
tokens on both tokenizers, and the offline model's knowledge of them, measured."""

import pytest
import torch

from readheads import truth


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def test_items_are_the_prefix_then_one_completion_token(course_model):
    items = truth.truth_items(course_model)
    tokenizer = course_model.tokenizer
    assert (items.true_ids != items.false_ids).all()
    assert set(items.family.tolist()) == set(range(len(truth.FAMILIES)))  # every family has items
    for row, (prefix, true_word, false_word) in enumerate(items.texts):
        stem = items.prefix_tokens[row, 1:items.end_pos[row] + 1].tolist()
        for token, word in ((items.true_ids[row], true_word), (items.false_ids[row], false_word)):
            assert tokenizer.decode(stem + [int(token)]) == f"{prefix} {word}"


def test_statements_pair_each_item_true_then_false_ending_in_a_full_stop(gpt2_test):
    items = truth.truth_items(gpt2_test, families=("capitals", "days"), seed=3)
    statements = truth.truth_statements(gpt2_test, items)
    assert statements.label.tolist() == [1, 0] * len(items.texts)
    for row in (0, 1, len(statements.label) - 1):
        item = int(statements.item[row])
        prefix, true_word, false_word = items.texts[item]
        word = true_word if statements.label[row] else false_word
        text = gpt2_test.tokenizer.decode(statements.tokens[row, 1:statements.end_pos[row] + 1].tolist())
        assert text == f"{prefix} {word}."
        assert statements.family[row] == items.family[item]


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="Unknown family 'planets'"):
        truth.truth_items(None, families=("planets",))


def test_the_offline_model_knows_capitals_and_opposites_but_not_which_number_is_larger(smollm2):
    """What the chapter filters on: measured 20/20 capitals, 25/25 opposites, 18/72 'larger'
    (it prefers the number named first in 52 of 72)."""
    items = truth.truth_items(smollm2)
    knows = truth.completion_margin(smollm2, items) > 0
    share = {name: float(knows[items.family == index].float().mean()) for index, name in enumerate(truth.FAMILIES)}
    assert share["capitals"] >= 0.9 and share["opposites"] >= 0.9
    assert share["larger"] < 0.5
