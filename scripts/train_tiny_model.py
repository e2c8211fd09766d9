"""Build the shipped tiny-letters task and train its checkpoints, deterministically.

    python scripts/train_tiny_model.py [--out eval_framework/embedded] [--steps 3000]

Writes ``data/tiny_letters_{test,fewshot}.jsonl`` and ``checkpoints/tiny-letters/v0..v2`` (config,
safetensors weights, char-level tokenizer). ``v0`` is the untrained initialisation (near chance),
``v1`` an early snapshot (step 1200: copy learned, reverse not yet), ``v2`` the fully trained
model. Same arguments, same machine: same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

SEED = 20261122
WORD_LEN = 4
OPS = ("copy", "reverse")
N_TEST_PER_OP = 100
N_FEWSHOT_PER_OP = 20


def answer(op: str, word: str) -> str:
    return word if op == "copy" else word[::-1]


def make_word(rng: random.Random) -> str:
    return "".join(rng.sample(string.ascii_lowercase, WORD_LEN))


def make_choices(rng: random.Random, op: str, word: str) -> tuple[list[str], int]:
    correct = answer(op, word)
    other = answer("reverse" if op == "copy" else "copy", word)  # the tempting wrong operation
    options = {correct, other}
    while len(options) < 4:
        options.add("".join(rng.sample(word, WORD_LEN)))
    choices = sorted(options)
    rng.shuffle(choices)
    return choices, choices.index(correct)


def build_data(rng: random.Random) -> tuple[list[dict], list[dict], set[str]]:
    used: set[str] = set()

    def rows(count: int, prefix: str) -> list[dict]:
        out = []
        for op in OPS:
            for i in range(count):
                word = make_word(rng)
                while word in used:
                    word = make_word(rng)
                used.add(word)
                choices, label = make_choices(rng, op, word)
                out.append(
                    {
                        "id": f"{prefix}-{op}-{i}",
                        "op": op,
                        "word": word,
                        "choices": choices,
                        "label": label,
                        "answer": answer(op, word),
                    }
                )
        return out

    test = rows(N_TEST_PER_OP, "test")
    fewshot = rows(N_FEWSHOT_PER_OP, "shot")
    return test, fewshot, used


def build_tokenizer(out_dir: Path):  # type: ignore[no-untyped-def]
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    chars = sorted(set(string.ascii_lowercase + " :->\n"))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>", unk_token="<unk>"
    )
    fast.model_max_length = 128
    return fast


def training_text(rng: random.Random, excluded: set[str]) -> str:
    examples = []
    for _ in range(rng.randint(1, 5)):
        op = rng.choice(OPS)
        word = make_word(rng)
        while word in excluded:
            word = make_word(rng)
        examples.append(f"{op}: {word} -> {answer(op, word)}")
    return "\n".join(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "eval_framework" / "embedded"
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument(
        "--snapshots",
        type=int,
        nargs="+",
        default=[0, 1200],
        help="steps saved as v0, v1, ...; the final step is saved last",
    )
    args = parser.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # thread count changes float summation order
    rng = random.Random(SEED)

    test, fewshot, used = build_data(rng)
    data_dir = args.out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("tiny_letters_test.jsonl", test), ("tiny_letters_fewshot.jsonl", fewshot)):
        (data_dir / name).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    tokenizer = build_tokenizer(args.out)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    ckpt_root = args.out / "checkpoints" / "tiny-letters"
    snapshots = sorted(set(args.snapshots))

    def save(version: int, step: int) -> None:
        target = ckpt_root / f"v{version}"
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target, safe_serialization=True)
        tokenizer.save_pretrained(target)
        (target / "training.json").write_text(json.dumps({"step": step, "seed": SEED}) + "\n")
        print(f"saved v{version} at step {step}")

    batch = 32
    for step in range(args.steps + 1):
        if step in snapshots:
            save(snapshots.index(step), step)
        if step == args.steps:
            break
        texts = [training_text(rng, used) for _ in range(batch)]
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f}")
    save(len(snapshots), args.steps)


if __name__ == "__main__":
    main()
