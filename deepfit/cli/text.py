"""`deepfit train lm FILE` (a language model on a text file) and `deepfit generate MODEL` (continue a text).

    deepfit train lm nietzsche.txt --tokenizer char --bptt 70 --epochs 5 --out runs/nietzsche
    deepfit generate runs/nietzsche/model.safetensors --prefix "the meaning of " -n 200 --temperature 0.8
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (EXIT_OK, Application, CLIError, Console, Prepared, RunDir, check_input_file, load_model_for,
                   non_negative_int, positive_float, positive_int)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["TextLMApp", "add_generate_arguments", "cmd_generate", "SAMPLE_TEMPERATURES"]

#: Temperatures of the samples in a run's report (and samples.txt), after one greedy sample.
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)
LM_DLS = "TextLMDataLoaders"


def _flagged(message: str) -> str:
    """A data error of deepfit.text in command-line terms: the flags to change instead of Python arguments."""
    message = re.sub(r"encoding='([^']+)' \(on the command line (--encoding \S+)\)", r"\2", message)
    for py, flag in (("bs or bptt", "--bs or --bptt"), ("valid_pct", "--valid-pct"), ("min_freq", "--min-freq"),
                     ("max_vocab", "--max-vocab"), ("max_size", "--max-vocab"), ("vocab_size=", "--max-vocab "),
                     (", or n_merges=", "")):
        message = message.replace(py, flag)
    return message


def _temperature(text: str) -> float:
    v = positive_float(text)
    if v > 100:
        raise argparse.ArgumentTypeError(f"must be at most 100, got {text}")
    return v


class TextLMApp(Application):
    """A recurrent language model (AWD-LSTM, GRU or RNN) on one text file, with generated samples."""

    name = "lm"
    help = "a text file: train a language model that writes like it"
    description = ("Train a language model on a plain-text file: the text is cut into tokens (characters, "
                   "words or BPE subwords), its last --valid-pct is held out for validation, and a stateful "
                   "recurrent network (an AWD-LSTM by default) learns to predict the next token. The run "
                   "directory gets the model, metrics.csv, loss and schedule plots, and a report with text "
                   "generated at a few temperatures; continue a text with `deepfit generate MODEL`.")
    examples = """examples:
  deepfit train lm nietzsche.txt --epochs 5 --out runs/nietzsche
  deepfit train lm nietzsche.txt --tokenizer char --lower --min-freq 3 --bptt 8 --arch gru --n-layers 1
  deepfit train lm reviews.txt --tokenizer word --emb-size 400 --n-hid 1150 --n-layers 3 --lr auto
  deepfit generate runs/nietzsche/model.safetensors --prefix "the meaning of " -n 200
"""
    dls_classes = (LM_DLS,)
    reads_table = False  # one text file: no --delimiter/--no-header options
    #: `deepfit predict` on such a model: what to say instead
    predict_instead = ("is a language model: it continues text rather than predicting the rows of a file; use "
                       "`deepfit generate MODEL --prefix \"...\" -n 200`")
    default_lr = 3e-3
    default_epochs = 5
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..text import TextDataError
        return (TextDataError,)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="FILE", help="the text (a plain-text file)")
        g = p.add_argument_group("reading the file")
        g.add_argument("--encoding", default="utf-8", help="text encoding of the file (default: %(default)s)")
        t = p.add_argument_group("tokens")
        t.add_argument("--tokenizer", choices=["char", "word", "bpe"], default="char",
                       help="characters, words (with case and repetition markers) or BPE subwords learned from "
                            "the training text (default: %(default)s)")
        t.add_argument("--lower", action="store_true",
                       help="lower-case the text first (char and bpe; the word tokenizer always marks case)")
        t.add_argument("--min-freq", type=positive_int, default=1, metavar="N",
                       help="tokens seen fewer times in the training text become xxunk (default: %(default)s)")
        t.add_argument("--max-vocab", type=positive_int, default=None, metavar="N",
                       help="at most N tokens in the vocabulary (bpe: pieces to learn; default: no limit, and "
                            "1000 merges for bpe)")
        t.add_argument("--bptt", type=positive_int, default=70, metavar="N",
                       help="tokens per row of a batch, i.e. steps of back-propagation through time "
                            "(default: %(default)s)")
        t.add_argument("--random-bptt", action="store_true",
                       help="vary the length of each training batch around --bptt, as AWD-LSTM does")
        m = p.add_argument_group("model")
        m.add_argument("--arch", choices=["lstm", "gru", "rnn"], default="lstm",
                       help="recurrent layer type (default: %(default)s, an AWD-LSTM)")
        m.add_argument("--emb-size", type=positive_int, default=128, metavar="N",
                       help="embedding size (default: %(default)s)")
        m.add_argument("--n-hid", type=positive_int, default=512, metavar="N",
                       help="hidden units per layer (default: %(default)s)")
        m.add_argument("--n-layers", type=positive_int, default=2, metavar="N",
                       help="recurrent layers (default: %(default)s)")
        m.add_argument("--drop-mult", type=float, default=0.5, metavar="X",
                       help="multiplies every AWD-LSTM dropout; 0 turns dropout off (default: %(default)s)")
        m.add_argument("--no-tie", dest="tie_weights", action="store_false",
                       help="do not share the embedding matrix with the output layer")
        s = p.add_argument_group("samples in the report")
        s.add_argument("--sample-prefix", default=None, metavar="TEXT",
                       help="start of the generated samples (default: the first words of the validation text)")
        s.add_argument("--sample-len", type=non_negative_int, default=200, metavar="N",
                       help="tokens per generated sample (default: %(default)s)")

    def finish_arguments(self, p: argparse.ArgumentParser) -> None:
        """Adjust the shared training options: the validation text is the end of the file, not random rows."""
        for action in p._actions:
            if action.dest == "valid_pct":
                action.default = 0.1
                action.help = "fraction of the text, at its end, held out for validation (default: %(default)s)"

    # ---- data and learner -------------------------------------------------------------------------------
    def read(self, args: argparse.Namespace) -> str:
        """The text of FILE, checked (existence, binary data, encoding, emptiness), with flag hints."""
        from ..text import TextDataError, decode_text
        path = check_input_file(Path(args.file), "text file")
        try:
            text = decode_text(path.read_bytes(), str(path), args.encoding)
        except TextDataError as e:
            msg = str(e)
            if msg.startswith("unknown encoding"):
                msg = f"unknown --encoding {args.encoding!r}; try utf-8, latin-1 or cp1252"
            raise CLIError(_flagged(msg)) from None
        if not text.strip():
            raise CLIError(f"{path} holds only whitespace: there is no text to learn from")
        return text

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from ..text.data import TextLMDataLoaders
        from ..text.learner import language_model_learner
        from ..text.metrics import accuracy, bits_per_char, perplexity
        from ..text.tokenize import get_tokenizer
        if not 0 <= args.drop_mult <= 10:
            raise CLIError(f"--drop-mult must be between 0 and 10, got {args.drop_mult}")
        source = Path(args.file).name
        text = self.read(args)
        try:
            with console.step("tokenizing"):
                # the word tokenizer always lower-cases with case markers; --lower is for char and bpe
                tok = get_tokenizer(args.tokenizer, lower=True if args.tokenizer == "word" else args.lower)
                dls = TextLMDataLoaders.from_text(text, tokenizer=tok, valid_pct=args.valid_pct,
                                                  bs=args.bs, bptt=args.bptt, min_freq=args.min_freq,
                                                  max_vocab=args.max_vocab, lower=args.lower, seed=args.seed,
                                                  random_bptt=args.random_bptt, device=args.device)
        except ValueError as e:  # TextDataError included: about the text or the sizes asked for
            raise CLIError(f"{source}: {_flagged(str(e))}") from None
        metrics: list[Any] = [accuracy, perplexity]
        if args.tokenizer == "char":
            metrics.append(bits_per_char)
        learn = language_model_learner(dls, arch=args.arch, emb_size=args.emb_size, n_hid=args.n_hid,
                                       n_layers=args.n_layers, drop_mult=args.drop_mult,
                                       tie_weights=args.tie_weights, metrics=metrics)
        n_tr = dls.train.n
        n_va = dls.valid.n if dls.valid is not None else 0
        desc = (f"{source}: {len(text):,} characters -> {n_tr + n_va:,} {args.tokenizer} tokens read per epoch "
                f"({n_tr:,} train / {n_va:,} valid), vocabulary of {len(dls.vocab):,}")
        facts = {"tokenizer": args.tokenizer, "vocabulary": len(dls.vocab), "train_tokens": n_tr,
                 "valid_tokens": n_va, "model": f"{args.arch.upper()} {args.n_layers} x {args.n_hid}, embeddings "
                 f"{args.emb_size}" + (", tied" if args.tie_weights else "")}
        cut = len(text) - int(round(len(text) * args.valid_pct))
        return Prepared(learn, desc, facts, "language model",
                        extra={"prefix": args.sample_prefix if args.sample_prefix is not None
                               else _default_prefix(text[cut:] if args.valid_pct > 0 else text),
                               "sample_len": args.sample_len, "seed": args.seed})

    # ---- report -----------------------------------------------------------------------------------------
    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import pandas as pd
        from ..text import TextDataError
        learn, extra = prepared.learn, prepared.extra
        if extra["sample_len"] == 0:
            return
        prefix = extra["prefix"]
        rows = []
        with console.step("generating samples"):
            for temp in (None,) + SAMPLE_TEMPERATURES:
                try:
                    out = learn.generate(prefix, extra["sample_len"], temperature=temp or 1.0, greedy=temp is None,
                                         seed=extra["seed"])
                except TextDataError as e:
                    console.warn(f"no samples in the report: {e}")
                    return
                rows.append(("greedy" if temp is None else f"{temp:g}", out))
        with open(run.file("samples.txt"), "w", encoding="utf-8") as f:
            for name, out in rows:
                f.write(f"==== temperature {name} ====\n{out}\n\n")
        table = pd.DataFrame({"temperature": [r[0] for r in rows],
                              "generated text": [r[1].replace("\n", " \u23ce ") for r in rows]})
        run.add_table("Generated samples", table, caption=f"Continuations of {prefix!r} ({extra['sample_len']} "
                      "tokens each): the most likely token every step (greedy), then sampled at each temperature "
                      "(lower: safer, higher: more varied). Line ends are shown as \u23ce; samples.txt has them as "
                      "they are.")

    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        raise CLIError(f"{getattr(args, 'model', 'this model')} {self.predict_instead}")

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tok = state.get("tokenizer", {})
        if isinstance(tok, dict):
            opts = ", ".join(f"{k}={v}" for k, v in tok.items() if k not in ("kind", "version", "model"))
            out["tokenizer"] = f"{tok.get('kind', '?')}" + (f" ({opts})" if opts else "")
        vocab = state.get("vocab", {})
        itos = vocab.get("itos", []) if isinstance(vocab, dict) else []
        if itos:
            shown = ", ".join(repr(t) for t in itos[:12])
            out["vocabulary"] = f"{len(itos)} tokens: {shown}{', ...' if len(itos) > 12 else ''}"
        if "bptt" in state:
            out["bptt"] = state["bptt"]
        return out or state


def _default_prefix(text: str, n_words: int = 4) -> str:
    """The first few whole words of `text` (a word cut by the start of the text is skipped), plus a space:
    the start of the report's samples."""
    words = text.split()
    if text and not text[0].isspace():
        words = words[1:]
    return " ".join(words[:n_words]) + " " if words else ""


# ---- deepfit generate ----------------------------------------------------------------------------------
def add_generate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `deepfit generate`."""
    p.add_argument("model", type=Path, metavar="MODEL", help="a language model (model.safetensors of `deepfit "
                                                             "train lm`)")
    p.add_argument("--prefix", "-p", default="", metavar="TEXT",
                   help="the start of the text to continue (default: empty, when the model's vocabulary has a "
                        "beginning-of-text token)")
    p.add_argument("-n", "--n-tokens", dest="n", type=non_negative_int, default=200, metavar="N",
                   help="tokens to generate (characters for a char model; default: %(default)s)")
    p.add_argument("--temperature", "-t", type=_temperature, default=0.8, metavar="T",
                   help="sampling temperature: lower is safer, higher more varied (default: %(default)s)")
    p.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                   help="sample only among the K most likely tokens (default: all)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token (no sampling)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampling, to repeat a result")
    p.add_argument("--samples", type=positive_int, default=1, metavar="N",
                   help="how many texts to generate (seeds --seed, --seed+1, ...; default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def load_lm(model: Path, device: str | None = None) -> "Learner":
    """Load an exported language model, failing clearly for anything else."""
    return load_model_for(model, LM_DLS, "a language model",
                          "`deepfit generate` needs the model.safetensors of `deepfit train lm`", device)


def cmd_generate(args: argparse.Namespace, console: Console) -> int:
    """`deepfit generate`: print the continuation(s) of --prefix to stdout."""
    from ..text import TextDataError
    with console.step("loading the model"):
        learn = load_lm(args.model, args.device)
    for k in range(args.samples):
        seed = None if args.seed is None else args.seed + k
        try:
            out = learn.generate(args.prefix, args.n, temperature=args.temperature, top_k=args.top_k,
                                 greedy=args.greedy, seed=seed)
        except TextDataError as e:
            raise CLIError(f"--prefix: {e}") from None
        if args.samples > 1:
            console.result(f"---- sample {k + 1} ----")
        console.result(out)
    return EXIT_OK
