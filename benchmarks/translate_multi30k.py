"""Translation German -> English on Multi30k (29,000 train / 1,014 val / 1,000 test2016 pairs).

Trains `translation_learner(arch=...)` within a wall-clock budget, then translates test2016 (greedy and
beam 5) and reports tokenised lower-cased BLEU (the number of the PyTorch tutorials whose anchors are GRU +
attention 28.3 and Transformer 36.5), detokenised sacreBLEU, the training time, decoding sentences/second and
the training tokens/second of deepfit's Learner against a hand-written loop on the same model and batches.

The budget: the one-cycle learning rate and momentum (and, for the RNN, the teacher-forcing ratio: by
default always for the first half, half for the next 30%, never for the last 20%; `--tf-always`, `--tf-half`
change the shares) follow the fraction of the wall-clock budget `--budget-min` used (training and the
per-epoch validation), not of a planned number of batches, and the fit stops at the budget
(`TimedOneCycle`); the log says how many epochs and batches ran.

Speed (`--speed-batches` > 0, before training): the same `--speed-batches` training batches, the same fresh
model weights and the same optimizer settings (deepfit `Adam` for both), teacher forcing always, gradient
clipping 1.0, run by `Learner.fit(1)` (no validation) and by a plain PyTorch loop, alternating, `--repeats`
each; the medians of process CPU seconds and target tokens/second.

Run (1 torch thread; in the background on a shared machine):
    nice -n 5 env PYTHONPATH=$PWD .venv/bin/python benchmarks/translate_multi30k.py --arch gru --budget-min 35 \\
        --out runs/bench_mt_gru.json
    nice -n 5 env PYTHONPATH=$PWD .venv/bin/python benchmarks/translate_multi30k.py --arch transformer ...
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from deepfit.callbacks import Callback, CancelFit, MixedPrecision
from deepfit.optim import Adam, set_hyper
from deepfit.schedule import one_cycle
from deepfit.seq2seq import (Seq2SeqDataLoader, Seq2SeqDataLoaders, sacrebleu_score, teacher_forcing_schedule,
                             tokenized_bleu, translation_learner)
from deepfit.utils import set_seed


class TimedOneCycle(Callback):
    """One-cycle learning rate and momentum (and the teacher-forcing ratio) as functions of the wall-clock
    fraction of the budget used, pos = elapsed / budget, instead of the fraction of planned batches; the
    fit stops after the batch that reaches the budget. On a shared machine whose speed changes by 2-3x
    within minutes, this ends the schedule at its end however many batches fit."""

    order = 2

    def __init__(self, seconds: float, lr_max: float, tf: Any = None) -> None:
        self.seconds, self.tf, self.stopped_at, self.steps = seconds, tf, None, 0
        self.scheds = one_cycle(lr_max)

    def before_fit(self) -> None:
        self.t0 = time.time()

    def before_batch(self) -> None:
        if not self.learner.training:
            return
        pos = 1.0 if self.seconds <= 0 else min(1.0, (time.time() - self.t0) / self.seconds)
        for k, s in self.scheds.items():
            set_hyper(self.learner.opt, k, s(pos))
        if self.tf is not None:
            self.learner.model.teacher_forcing = float(self.tf(pos))

    def after_batch(self) -> None:
        if not self.learner.training:
            return
        self.steps += 1
        if time.time() - self.t0 >= self.seconds:
            self.stopped_at = (self.learner.epoch, self.learner.iter)
            raise CancelFit


def read(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.arch == "transformer":
        return dict(emb_sz=args.emb_sz or 256, n_layers=args.n_layers or 3, n_heads=8, d_ff=args.d_ff or 512,
                    dropout=0.1)
    return dict(emb_sz=args.emb_sz or 256, n_hid=args.n_hid, n_layers=args.n_layers or 1, dropout=0.3)


def learner(dls: Seq2SeqDataLoaders, args: argparse.Namespace, tf: Any) -> Any:
    return translation_learner(dls, arch=args.arch, teacher_forcing=tf, progress=False, seed=0,
                               metrics=() if args.no_valid_bleu else "default", **model_kwargs(args))


def speed(dls: Seq2SeqDataLoaders, args: argparse.Namespace) -> dict[str, Any]:
    """Learner.fit(1) against a hand-written loop: same model weights, batches and optimizer."""
    from deepfit.data.core import DataLoaders
    n = args.speed_batches * args.bs
    tr = dls.train
    sub = Seq2SeqDataLoader([tr.tensors[0][s:s + l] for s, l in zip(tr.tensors[1][:n].tolist(), tr.tensors[2][:n].tolist())],
                            [tr.tensors[3][s:s + l] for s, l in zip(tr.tensors[4][:n].tolist(), tr.tensors[5][:n].tolist())],
                            bs=args.bs, src_pad=dls.src_pad, tgt_pad=dls.tgt_pad)
    batches = list(sub)
    n_tok = sum(int((b[3] != dls.tgt_pad).sum()) for b in batches)
    sdls = Seq2SeqDataLoaders(sub, None, dls.src_vocab, dls.tgt_vocab, dls.src_tok, dls.tgt_tok)
    learn = learner(sdls, args, tf=None)
    learn.metrics = []
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    loss_func = sdls.default_loss

    def run_learner() -> float:
        learn.model.load_state_dict(init)
        t = time.process_time()
        learn.fit(1, lr=1e-3, wd=0.0, reset_opt=True)
        return time.process_time() - t

    def run_hand() -> float:
        model = learn.model
        model.load_state_dict(init)
        opt = Adam(list(model.parameters()), lr=1e-3, wd=0.0)
        model.train()
        t = time.process_time()
        for src, src_len, tgt_in, tgt_out in batches:
            loss = loss_func(model(src, src_len, tgt_in), tgt_out)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
        return time.process_time() - t

    run_hand()  # warm-up
    lt, ht = [], []
    for _ in range(args.repeats):
        lt.append(run_learner())
        ht.append(run_hand())
    ml, mh = statistics.median(lt), statistics.median(ht)
    return {"speed_batches": len(batches), "target_tokens": n_tok, "learner_cpu_s": lt, "hand_cpu_s": ht,
            "learner_tok_s": n_tok / ml, "hand_tok_s": n_tok / mh, "ratio_cpu": ml / mh}


def decode_speed(learn: Any, src: list[str], refs: list[str], beam: int, alpha: float) -> dict[str, Any]:
    t0, c0 = time.time(), time.process_time()
    hyps = learn.translate_many(src, beam=beam, length_penalty=alpha, bs=128)
    wall, cpu = time.time() - t0, time.process_time() - c0
    return {"beam": beam, "length_penalty": alpha, "bleu_tok": tokenized_bleu(hyps, refs),
            "sacrebleu": sacrebleu_score(hyps, refs), "sent_per_s": len(src) / wall, "cpu_s": cpu, "wall_s": wall,
            "examples": [(s, h, r) for s, h, r in list(zip(src, hyps, refs))[:3]]}


def decode_only(args: argparse.Namespace) -> None:
    """Translate test2016 with an exported model (greedy and beam 5) and merge the numbers into --out."""
    from deepfit.export import load_learner
    res = json.loads(args.out.read_text()) if args.out.is_file() else {}
    learn = load_learner(args.decode_only, device="cpu")
    d = args.data
    src, refs = read(d / "test2016.de")[: args.test_n], read(d / "test2016.en")[: args.test_n]
    res["decoded_from"] = str(args.decode_only)
    for key, beam, alpha in (("test_greedy", 1, 0.0), ("test_beam5", 5, args.alpha)):
        res[key] = decode_speed(learn, src, refs, beam, alpha)
        print(key, res[key], flush=True)
        args.out.write_text(json.dumps(res, indent=1, default=str))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["gru", "lstm", "transformer"], default="gru")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("DEEPFIT_DATA", "../shared/data")) / "multi30k")
    p.add_argument("--budget-min", type=float, default=35.0)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--bs", type=int, default=128)
    p.add_argument("--lr", type=float, default=None, help="peak lr; default 3e-3 (RNN) / 2e-3 (Transformer)")
    p.add_argument("--emb-sz", type=int, default=None)
    p.add_argument("--n-hid", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=None)
    p.add_argument("--d-ff", type=int, default=None)
    p.add_argument("--min-freq", type=int, default=2)
    p.add_argument("--tf-always", type=float, default=0.5,
                   help="RNN: fraction of the budget with teacher forcing always (ratio 1)")
    p.add_argument("--tf-half", type=float, default=0.3,
                   help="RNN: the next fraction with ratio 0.5; the rest of the budget has ratio 0 (never)")
    p.add_argument("--bf16", action="store_true",
                   help="train under bf16 autocast (MixedPrecision; 1.4x GRU, 1.7x Transformer per step on this CPU)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--speed-batches", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-valid-bleu", action="store_true", help="no greedy BLEU of the validation set per epoch")
    p.add_argument("--alpha", type=float, default=0.6, help="length penalty of the beam search")
    p.add_argument("--out", type=Path, default=Path("runs/bench_translate.json"))
    p.add_argument("--export", type=Path, default=None)
    p.add_argument("--test-n", type=int, default=None, help="only the first N test sentences (a quick check)")
    p.add_argument("--decode-only", type=Path, default=None, metavar="MODEL",
                   help="only translate test2016 with this exported model, adding the numbers to --out")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    set_seed(0)
    if args.decode_only is not None:
        decode_only(args)
        return
    res: dict[str, Any] = {"arch": args.arch, "args": {k: str(v) for k, v in vars(args).items()},
                           "torch": torch.__version__, "threads": args.threads, "device": "cpu",
                           "start_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        args.out.write_text(json.dumps(res, indent=1, default=str))

    d = args.data
    t0 = time.time()
    dls = Seq2SeqDataLoaders.from_files(d / "train.de", d / "train.en", d / "val.de", d / "val.en", bs=args.bs,
                                        min_freq=args.min_freq, seed=0, device="cpu")
    res["data"] = {"train": dls.train.n, "valid": dls.valid.n, "src_vocab": len(dls.src_vocab),
                   "tgt_vocab": len(dls.tgt_vocab), "prep_s": time.time() - t0}
    print(res["data"], flush=True)
    if args.speed_batches:
        res["speed"] = speed(dls, args)
        print("speed", res["speed"], flush=True)
        save()
    lr = args.lr or (2e-3 if args.arch == "transformer" else 3e-3)
    tf = None if args.arch == "transformer" else teacher_forcing_schedule(args.tf_always, args.tf_half)
    learn = learner(dls, args, None)  # the teacher-forcing ratio follows the clock (TimedOneCycle)
    res["params"] = sum(p.numel() for p in learn.model.parameters())
    budget = args.budget_min * 60
    timed = TimedOneCycle(budget, lr, tf)
    res["schedule"] = {"lr_max": lr, "teacher_forcing": f"1 for {args.tf_always:.0%}, 0.5 for {args.tf_half:.0%}, 0 "
                       f"for the rest of the budget" if tf is not None else None}
    save()
    t0, c0 = time.time(), time.process_time()
    cbs: list[Any] = [timed] + ([MixedPrecision(torch.bfloat16)] if args.bf16 else [])
    learn.fit(args.max_epochs, lr, cbs=cbs)  # gradient clipping 1.0: translation_learner's default
    res["train"] = {"wall_s": time.time() - t0, "cpu_s": time.process_time() - c0, "steps": timed.steps,
                    "epochs_run": len(learn.recorder.log), "stopped_at": timed.stopped_at, "log": learn.recorder.log}
    print("train", res["train"], flush=True)
    save()
    if args.export:
        learn.export(args.export)
    src, refs = read(d / "test2016.de")[: args.test_n], read(d / "test2016.en")[: args.test_n]
    res["test_greedy"] = decode_speed(learn, src, refs, 1, 0.0)
    print("greedy", res["test_greedy"], flush=True)
    save()
    res["test_beam5"] = decode_speed(learn, src, refs, 5, args.alpha)
    print("beam5", res["test_beam5"], flush=True)
    res["end_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    save()


if __name__ == "__main__":
    main()
