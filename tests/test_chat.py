"""Instruction pairs as chat examples: the template, response-only labels, padding, the validation loss,
and `nteach train lm` on a JSON Lines file of pairs."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from nteach.attention.chat import ChatExamples, PadCollator, encode_pair, prompt_text, response_loss  # noqa: E402
from nteach.attention.losses import IGNORE  # noqa: E402
from nteach.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
WORDS = "what is a kluge cruft hack code ugly old junk user system assistant question answer : < > |".split()
TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} |{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture
def tokenizer():
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(words)})
    tokenizer.eos_token = "[SEP]"
    return tokenizer


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_prompt_tokens_carry_no_label_and_the_response_ends_the_turn(tokenizer):
    tokenizer.chat_template = TEMPLATE
    assert prompt_text(tokenizer, "what is cruft") == "<user> what is cruft |<assistant>"
    with_system = "<system> answer |<user> what is cruft |<assistant>"
    assert prompt_text(tokenizer, "what is cruft", "answer") == with_system
    item = encode_pair(tokenizer, ("what is cruft", "old ugly code"), max_tokens=64)
    prompt, response = ids(tokenizer, "<user> what is cruft |<assistant>"), ids(tokenizer, "old ugly code")
    eos = tokenizer.eos_token_id
    assert item["input_ids"].tolist() == prompt + response + [eos]
    assert item["labels"].tolist() == [IGNORE] * len(prompt) + response + [eos]
    cut = encode_pair(tokenizer, ("what is cruft", "old ugly code"), max_tokens=len(prompt) + 1)
    assert cut["labels"].tolist() == [IGNORE] * len(prompt) + response[:1]


def test_without_a_template_a_plain_question_frame(tokenizer):
    assert prompt_text(tokenizer, "what is a hack") == "Question: what is a hack\nAnswer: "


def test_examples_whose_response_was_cut_away_are_dropped(tokenizer):
    tokenizer.chat_template = TEMPLATE
    prompt_length = len(ids(tokenizer, "<user> what is cruft |<assistant>"))
    data = ChatExamples(tokenizer, [("what is cruft", "junk"), ("what is a kluge what is a kluge", "hack")],
                        max_tokens=prompt_length + 1)
    assert len(data) == 1 and data[0]["input_ids"].tolist()[-1] == ids(tokenizer, "junk")[0]


def test_padding_and_the_index():
    collate = PadCollator(pad_id=0)
    batch = collate([{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([IGNORE, 6, 7]), "idx": 3},
                     {"input_ids": torch.tensor([8]), "labels": torch.tensor([8]), "idx": 1}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and batch["idx"].tolist() == [3, 1]


def test_the_validation_loss_is_the_mean_over_response_tokens(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1,
                                       n_head=2)).eval()
    pairs = [("what is cruft", "old ugly code"), ("what is a hack", "code"),
             ("what is junk", "old code junk")]
    data = ChatExamples(tokenizer, pairs, max_tokens=64)
    token_losses = []
    for item in data:  # one at a time, no padding: each response token's next-token loss
        logits = model(input_ids=item["input_ids"][None]).logits[0, :-1]
        labels = item["labels"][1:]
        keep = labels != IGNORE
        token_losses.append(torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="none"))
    expected = torch.cat(token_losses).mean().item()
    metrics = response_loss(model, data, PadCollator(tokenizer.pad_token_id), batch_size=2,
                            device=torch.device("cpu"))
    assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["val_perplexity"] == pytest.approx(torch.tensor(expected).exp().item(), rel=1e-5)
    assert metrics["val_loss_se"] > 0


def test_train_lm_on_a_file_of_pairs(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer.chat_template = TEMPLATE
    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                               eos_token_id=tokenizer.eos_token_id)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    pairs = tmp_path / "pairs.jsonl"
    subjects = ["cruft", "kluge", "hack", "code", "junk", "user"]
    pairs.write_text("\n".join(json.dumps({"prompt": f"what is {a} {b}", "response": f"old {b} {a} junk"})
                               for a in subjects for b in subjects))
    out = tmp_path / "run"
    args = ["train", "lm", "--data", str(pairs), "--model", str(folder), "--lora-rank", "2", "--val-examples",
            "12", "--seq-len", "32", "--batch-size", "4", "--epochs", "2", "--teacher", "full",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1, 2] and history[-1]["examples"] == 2 * 24
    work = history[-1]["work"]
    assert work["steps"] == 12 and work["trained"] == 48 and work["forwarded"] == 0
    assert 48 * 10 <= work["trained_tokens"] <= 48 * 20  # every example: its prompt and response, padded
    assert history[-1]["val_loss_se"] > 0


def test_a_gguf_model_is_converted_once_into_the_cache(tmp_path, monkeypatch):
    from nteach.attention.recipes.lm import cache_folder, dense_copy

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "model.gguf").write_bytes(b"x" * 10)
    converted = cache_folder() / "model-10"  # keyed by the file's name and size
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    assert cache_folder() == tmp_path / "cache" / "nteach" / "models"
    assert dense_copy(tmp_path, "model.gguf") == converted  # reused: nothing is loaded


def test_lora_starts_from_the_seed_and_leaves_the_callers_random_state(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    from nteach.attention.recipes.lm import load_pretrained

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=16, n_layer=1,
                               n_head=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    def adapters(seed):
        model, _ = load_pretrained(str(folder), 2, 4.0, seed)
        return {k: v.clone() for k, v in model.state_dict().items() if "lora_A" in k}

    before = torch.get_rng_state()
    first, again, other = adapters(3), adapters(3), adapters(4)
    assert first and all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    assert torch.equal(torch.get_rng_state(), before)
