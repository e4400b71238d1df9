"""`deepfit train translate SRC_FILE TGT_FILE` (a translation model on aligned files) and
`deepfit translate MODEL --text "..."` or `--file F` (translate with it).

    deepfit train translate train.de train.en --valid-src val.de --valid-tgt val.en --epochs 8 --out runs/de-en
    deepfit translate runs/de-en/model.safetensors --text "Ein Hund läuft im Schnee." --beam 5
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (EXIT_OK, Application, CLIError, Console, Prepared, RunDir, check_input_file, load_model_for,
                   non_negative_float, non_negative_int, positive_int)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["TranslateApp", "add_translate_arguments", "cmd_translate"]

S2S_DLS = "Seq2SeqDataLoaders"


def _flagged(message: str) -> str:
    """A data error of deepfit.seq2seq in command-line terms (flags instead of Python arguments)."""
    for py, flag in (("max_src_len", "--max-src-len"), ("max_tgt_len", "--max-tgt-len"), ("min_freq", "--min-freq"),
                     ("max_size", "--max-vocab"), ("valid_pct", "--valid-pct")):
        message = message.replace(py, flag)
    return re.sub(r"encoding='([^']+)' \(on the command line (--encoding \S+)\)", r"\2", message)


class TranslateApp(Application):
    """Sequence to sequence: a bidirectional GRU/LSTM with attention, or a Transformer, on aligned files."""

    name = "translate"
    help = "two aligned text files (a sentence a line): train a translation model"
    description = ("Train a translation model on two aligned text files: line i of TGT_FILE is the translation "
                   "of line i of SRC_FILE. Both sides are cut into words (or BPE subwords) with their own "
                   "vocabularies; a bidirectional GRU encoder with an attention decoder (the course's lesson; "
                   "teacher forcing scheduled from always to half the time) or a Transformer learns to translate. "
                   "Validation pairs come from --valid-src/--valid-tgt or a random --valid-pct. The run "
                   "directory gets the model, metrics.csv (with the validation BLEU every epoch), plots, and a "
                   "report with BLEU (tokenised lower-cased and sacreBLEU), example translations and attention "
                   "maps; translate with `deepfit translate MODEL --text \"...\"`.")
    examples = """examples:
  deepfit train translate train.de train.en --valid-src val.de --valid-tgt val.en --epochs 8 --out runs/de-en
  deepfit train translate src.txt tgt.txt --arch transformer --emb-size 256 --n-layers 3 --lr 2e-3
  deepfit translate runs/de-en/model.safetensors --text "Ein Hund läuft im Schnee." --beam 5
"""
    dls_classes = (S2S_DLS,)
    reads_table = False
    predict_instead = ("is a translation model: it translates sentences rather than predicting the rows of a file; "
                       "use `deepfit translate MODEL --text \"...\"` or `--file FILE`")
    default_lr = 3e-3
    default_epochs = 8
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..text import TextDataError
        return (TextDataError,)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="SRC_FILE", help="the source sentences, one a line")
        p.add_argument("tgt_file", type=Path, metavar="TGT_FILE", help="their translations, line by line")
        g = p.add_argument_group("reading the files")
        g.add_argument("--valid-src", type=Path, default=None, metavar="FILE",
                       help="validation source sentences (with --valid-tgt; default: a random --valid-pct of the pairs)")
        g.add_argument("--valid-tgt", type=Path, default=None, metavar="FILE", help="their translations")
        g.add_argument("--encoding", default="utf-8", help="text encoding of the files (default: %(default)s)")
        t = p.add_argument_group("tokens")
        t.add_argument("--tokenizer", choices=["word", "bpe"], default="word",
                       help="words and punctuation (case kept by markers) or BPE subwords learned from each "
                            "training side (default: %(default)s)")
        t.add_argument("--min-freq", type=positive_int, default=2, metavar="N",
                       help="tokens seen fewer times in a training side become xxunk (default: %(default)s)")
        t.add_argument("--max-vocab", type=positive_int, default=None, metavar="N",
                       help="at most N tokens per vocabulary (bpe: pieces to learn; default: no limit, 1000 merges "
                            "for bpe)")
        t.add_argument("--max-src-len", type=positive_int, default=None, metavar="N",
                       help="leave out training pairs whose source has more than N tokens (default: keep all)")
        t.add_argument("--max-tgt-len", type=positive_int, default=None, metavar="N",
                       help="leave out training pairs whose translation has more than N tokens (default: keep all)")
        m = p.add_argument_group("model")
        m.add_argument("--arch", choices=["gru", "lstm", "transformer"], default="gru",
                       help="bidirectional GRU/LSTM with attention, or a Transformer (default: %(default)s)")
        m.add_argument("--emb-size", type=positive_int, default=None, metavar="N",
                       help="embedding size (the Transformer's width; default 256, or the vectors' size)")
        m.add_argument("--n-hid", type=positive_int, default=256, metavar="N",
                       help="GRU/LSTM hidden units (default: %(default)s)")
        m.add_argument("--n-layers", type=positive_int, default=None, metavar="N",
                       help="encoder layers (default 1), or layers of each Transformer stack (default 3)")
        m.add_argument("--dropout", type=non_negative_float, default=None, metavar="P",
                       help="dropout (default 0.3 for GRU/LSTM, 0.1 for the Transformer)")
        m.add_argument("--max-len", type=positive_int, default=None, metavar="N",
                       help="the longest sentence, in tokens, the model translates (default: twice the longest "
                            "of the data, at least 64)")
        m.add_argument("--teacher-forcing", choices=["default", "lesson", "always"], default="default",
                       help="GRU/LSTM: how often the decoder reads the true previous word while training: default "
                            "always for the first half of the fit, then half the time; lesson: always -> half -> "
                            "never in thirds (the course's); always: every step")
        m.add_argument("--src-vectors", type=Path, default=None, metavar="FILE",
                       help="pretrained source word vectors (GloVe, word2vec or fastText .vec text file)")
        m.add_argument("--tgt-vectors", type=Path, default=None, metavar="FILE",
                       help="pretrained target word vectors")
        r = p.add_argument_group("report")
        r.add_argument("--beam", type=positive_int, default=5, metavar="K",
                       help="beam size for the report's BLEU (besides greedy; default: %(default)s)")
        r.add_argument("--length-penalty", type=non_negative_float, default=0.6, metavar="A",
                       help="GNMT length penalty alpha of the beam search (default: %(default)s)")
        r.add_argument("--attention-maps", type=non_negative_int, default=3, metavar="N",
                       help="attention heat maps of the first N validation sentences (GRU/LSTM; default: "
                            "%(default)s)")

    def finish_arguments(self, p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if action.dest == "valid_pct":
                action.default = 0.1
                action.help = ("fraction of the pairs held out at random for validation when there is no "
                               "--valid-src/--valid-tgt (default: %(default)s)")

    # ---- data and learner -------------------------------------------------------------------------------
    def _read(self, src: Path, tgt: Path, encoding: str, flags: str) -> tuple[list[str], list[str]]:
        from ..seq2seq import read_parallel
        from ..text import TextDataError
        check_input_file(src, "source file")
        check_input_file(tgt, "target file")
        try:
            return read_parallel(src, tgt, encoding)
        except TextDataError as e:
            msg = str(e)
            if msg.startswith("unknown encoding"):
                msg = f"unknown --encoding {encoding!r}; try utf-8, latin-1 or cp1252"
            raise CLIError(f"{_flagged(msg)} ({flags})") from None

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from ..seq2seq import Seq2SeqDataLoaders, load_vectors, translation_learner
        from ..text import TextDataError
        from ..text.tokenize import get_tokenizer
        if (args.valid_src is None) != (args.valid_tgt is None):
            raise CLIError("give both --valid-src and --valid-tgt, or neither (then --valid-pct of the pairs is "
                           "held out)")
        if args.dropout is not None and not args.dropout < 1:
            raise CLIError(f"--dropout must be below 1, got {args.dropout}")
        src, tgt = self._read(Path(args.file), Path(args.tgt_file), args.encoding, "SRC_FILE and TGT_FILE")
        vs = vt = None
        if args.valid_src is not None:
            vs, vt = self._read(args.valid_src, args.valid_tgt, args.encoding, "--valid-src and --valid-tgt")
        try:
            with console.step("tokenizing"):
                toks = [None, None] if args.tokenizer == "word" else [get_tokenizer("bpe"), get_tokenizer("bpe")]
                dls = Seq2SeqDataLoaders.from_texts(
                    src, tgt, vs, vt, valid_pct=args.valid_pct, seed=args.seed, bs=args.bs, src_tokenizer=toks[0],
                    tgt_tokenizer=toks[1], min_freq=args.min_freq, max_vocab=args.max_vocab,
                    max_src_len=args.max_src_len, max_tgt_len=args.max_tgt_len, device=args.device,
                    src_name=str(args.file), tgt_name=str(args.tgt_file),
                    valid_names=(str(args.valid_src), str(args.valid_tgt)), from_lines=True)
        except ValueError as e:
            raise CLIError(_flagged(str(e))) from None
        vectors: dict[str, Any] = {}
        for side, flag, vocab in (("src", "--src-vectors", dls.src_vocab), ("tgt", "--tgt-vectors", dls.tgt_vocab)):
            path = getattr(args, f"{side}_vectors")
            if path is None:
                continue
            check_input_file(path, f"{flag} file")
            try:
                with console.step(f"reading {flag}"):
                    vectors[side], cov = load_vectors(path, vocab)
            except TextDataError as e:
                raise CLIError(f"{flag}: {e}") from None
            console.info(str(cov))
        try:
            learn = translation_learner(dls, arch=args.arch, emb_sz=args.emb_size, n_hid=args.n_hid,
                                        n_layers=args.n_layers, dropout=args.dropout, max_len=args.max_len,
                                        src_vectors=vectors.get("src"), tgt_vectors=vectors.get("tgt"),
                                        teacher_forcing=None if args.teacher_forcing == "always"
                                        else args.teacher_forcing)
        except ValueError as e:
            msg = str(e).replace("emb_sz", "--emb-size").replace("leave --emb-size out", "leave out --emb-size")
            raise CLIError(msg) from None
        n_va = dls.valid.n if dls.valid is not None else 0
        dropped = f", {dls.n_dropped:,} left out for length" if dls.n_dropped else ""
        desc = (f"{Path(args.file).name} -> {Path(args.tgt_file).name}: {dls.train.n:,} training pairs{dropped}, "
                f"{n_va:,} validation pairs; vocabularies {len(dls.src_vocab):,} -> {len(dls.tgt_vocab):,}")
        model = (f"{args.arch.upper()} encoder-decoder with attention" if args.arch != "transformer" else
                 "Transformer encoder-decoder")
        facts = {"pairs": f"{dls.train.n:,} train / {n_va:,} valid", "dropped_for_length": dls.n_dropped,
                 "vocabularies": f"{len(dls.src_vocab):,} -> {len(dls.tgt_vocab):,}", "model": model}
        return Prepared(learn, desc, facts, "translation",
                        extra={"valid": (dls.valid.texts, dls.valid.targets) if dls.valid is not None else None})

    # ---- report -----------------------------------------------------------------------------------------
    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import pandas as pd
        learn, valid = prepared.learn, prepared.extra.get("valid")
        beam = getattr(self, "_beam", 5)
        alpha = getattr(self, "_alpha", 0.6)
        n_maps = getattr(self, "_n_maps", 3)
        if not valid or not valid[0]:
            run.add_text("BLEU", "No validation pairs (--valid-pct 0 and no --valid-src): no BLEU.")
            return
        src, refs = valid
        rows, scores = [], {}
        with console.step("translating the validation set"):
            for name, b in (("greedy", 1), (f"beam {beam}", beam)):
                res = learn.bleu(src, refs, beam=b, length_penalty=alpha if b > 1 else 0.0)
                scores[name] = res
                rows.append({"decoding": name, "BLEU (tokenised, lower-cased)": round(res["bleu_tok"], 2),
                             "sacreBLEU": round(res["sacrebleu"], 2)})
        run.summary["bleu"] = {r["decoding"]: {"bleu_tok": r["BLEU (tokenised, lower-cased)"],
                                               "sacrebleu": r["sacreBLEU"]} for r in rows}
        run.add_table("BLEU on the validation pairs", pd.DataFrame(rows),
                      caption="Tokenised lower-cased BLEU (words and punctuation, as the PyTorch tutorials report) "
                              "and detokenised sacreBLEU (13a, case-sensitive: the comparable number), greedy and "
                              f"beam search (length penalty {alpha:g}).", csv_name="bleu.csv")
        hyps = scores[f"beam {beam}"]["hyps"]
        ex = pd.DataFrame({"source": src[:10], "reference": refs[:10], "translation": hyps[:10]})
        run.add_table("Example translations", ex, caption=f"The first validation sentences, beam {beam}.")
        if n_maps and hasattr(learn.model, "attention"):
            for i, s in enumerate(src[:n_maps]):
                run.add_figure(f"attention_{i + 1}.png", f"Attention: validation sentence {i + 1}",
                               lambda p, s=s: learn.plot_attention(s, fname=p),
                               caption=f"Where the decoder looks while translating {s[:80]!r} (greedy): rows are "
                                       "the output tokens, columns the source tokens; each row sums to 1.",
                               console=console)

    def train(self, args: argparse.Namespace, run: RunDir, prepared: Prepared, console: Console) -> dict[str, Any]:
        from .training import standard_train
        self._beam, self._alpha, self._n_maps = args.beam, args.length_penalty, args.attention_maps
        return standard_train(self, args, run, prepared, console)

    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        raise CLIError(f"{getattr(args, 'model', 'this model')} {self.predict_instead}")

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side in ("src", "tgt"):
            tok, vocab = state.get(f"{side}_tokenizer", {}), state.get(f"{side}_vocab", {})
            itos = vocab.get("itos", []) if isinstance(vocab, dict) else []
            kind = tok.get("kind", "?") if isinstance(tok, dict) else "?"
            out[f"{side} side"] = f"{kind} tokens, vocabulary of {len(itos)}"
        return out


# ---- deepfit translate ---------------------------------------------------------------------------------
def add_translate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `deepfit translate`."""
    p.add_argument("model", type=Path, metavar="MODEL",
                   help="a translation model (model.safetensors of `deepfit train translate`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", "-t", action="append", default=None, metavar="TEXT",
                     help="a sentence to translate (repeat for several)")
    src.add_argument("--file", "-f", type=Path, default=None, metavar="FILE",
                     help="translate every line of FILE (blank lines stay blank)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE",
                   help="write the translations here, one a line (default: print them)")
    p.add_argument("--beam", type=positive_int, default=1, metavar="K", help="beam size (1: greedy; default: 1)")
    p.add_argument("--length-penalty", type=non_negative_float, default=0.6, metavar="A",
                   help="GNMT length penalty alpha for --beam > 1 (default: %(default)s)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of --file (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")


def load_translator(model: Path, device: str | None = None) -> "Learner":
    """Load an exported translation model, failing clearly for anything else."""
    return load_model_for(model, S2S_DLS, "a translation model",
                          "`deepfit translate` needs the model.safetensors of `deepfit train translate`", device)


def cmd_translate(args: argparse.Namespace, console: Console) -> int:
    """`deepfit translate`: translate --text sentences or the lines of --file."""
    from ..seq2seq import SentenceTooLongError
    from ..text import TextDataError, decode_text
    from ..utils import atomic_path
    if args.out is not None:
        from . import _check_output_file
        _check_output_file(args.out, [args.model] + ([args.file] if args.file is not None else []))
    if args.file is not None:
        path = check_input_file(args.file, "--file")
        try:
            text = decode_text(path.read_bytes(), str(path), args.encoding)
        except TextDataError as e:
            raise CLIError(f"--file: {e}") from None
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        where = [f"line {i + 1} of {path}" for i in range(len(lines))]
        flag = "--file"
    else:
        lines = list(args.text)
        where = [f"--text {i + 1}" if len(lines) > 1 else "--text" for i in range(len(lines))]
        flag = "--text"
        empty = [w for w, s in zip(where, lines) if not s.strip()]
        if empty:
            raise CLIError(f"{empty[0]} is empty: give a sentence to translate")
    todo = [i for i, s in enumerate(lines) if s.strip()]
    if not todo:
        raise CLIError(f"--file {args.file} holds no sentence to translate (every line is blank)")
    with console.step("loading the model"):
        learn = load_translator(args.model, args.device)
    try:
        src, _ = learn.encode_sources([lines[i] for i in todo])  # every sentence checked before any work
    except SentenceTooLongError as e:
        k = int(re.search(r"sentence (\d+)", str(e)).group(1))  # type: ignore[union-attr]
        detail = str(e).split(": split it")[0].split(") has ", 1)[-1]
        raise CLIError(f"{where[todo[k]]} is too long: it has {detail}. Split it into shorter sentences") from None
    except TextDataError as e:
        raise CLIError(f"{flag}: {e}") from None
    del src
    with console.step(f"translating {len(todo)} sentence(s)"):
        outs = learn.translate_many([lines[i] for i in todo], beam=args.beam,
                                    length_penalty=args.length_penalty if args.beam > 1 else 0.0)
    result = [""] * len(lines)
    for i, o in zip(todo, outs):
        result[i] = o
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text("\n".join(result) + "\n", encoding="utf-8")
        console.result(f"wrote {len(todo)} translation(s) to {args.out}")
    else:
        for r in result:
            console.result(r)
    return EXIT_OK
