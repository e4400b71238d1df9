"""Lesson 4: the same MLP through deepfit's Learner: the loop, validation, metrics, the 1cycle
schedule, the learning-rate finder, plots and export come with it.

Run: python examples/mnist_04_learner.py   (writes its plots and model to $DEEPFIT_OUT or ./runs/mnist_04)
"""
import os
from pathlib import Path

from deepfit import Learner, accuracy, load_learner, set_seed
from deepfit.data.mnist import demo_dls
from deepfit.layers import MLP

set_seed(0)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT = Path(os.environ.get("DEEPFIT_OUT", "runs/mnist_04"))

dls, source = demo_dls(DATA, bs=64)                # MNIST if present, else generated digits
print(f"data: {source}")
learn = Learner(dls, MLP(784, [100, 100], 10), metrics=[accuracy], path=OUT)   # loss: cross entropy

suggested = learn.lr_find()                        # a short sweep; weights are restored afterwards
print(suggested)
learn.fit_one_cycle(3, 1e-2)                       # warm-up then cosine annealing, momentum the other way

learn.recorder.plot_loss(fname=OUT / "loss.png")
learn.recorder.plot_sched(fname=OUT / "schedule.png")
dls.show_batch(fname=OUT / "batch.png")

path = learn.export("mlp.safetensors")            # weights + normalisation stats, no pickle
inference = load_learner(path)
image = (dls.decode_images(dls.valid.tensors[0][0]) * 255).round().byte()  # a raw 28x28 validation image
label, _, probs = inference.predict(image)
print(f"first validation image: predicted {label} (p={probs.max().item():.3f}), "
      f"true {dls.vocab[int(dls.valid.tensors[1][0])]}")
