"""Collaborative-filtering lesson: learn latent factors of users and movies from MovieLens 100k ratings,
then look inside: which movies people like more than their factors explain (biases), what the main
directions of taste are (PCA of the movie factors), what to recommend to a user and which movies are alike.

Run: python examples/collab_movielens.py   (reads $DEEPFIT_DATA/ml-100k, default ../shared/data; writes
plots and the exported model to $DEEPFIT_OUT or ./runs/collab_movielens; EPOCHS=5 by default)
"""
import os
import time
from pathlib import Path

import pandas as pd
import torch

from deepfit import load_learner, set_seed
from deepfit.collab import CollabDataLoaders, collab_learner

set_seed(42)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "ml-100k"
OUT = Path(os.environ.get("DEEPFIT_OUT", "runs/collab_movielens"))
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = int(os.environ.get("EPOCHS", "5"))
torch.set_num_threads(1)  # tiny embedding ops: one thread is fastest on a small CPU

# 1. The ratings (user, movie id, rating, timestamp; tab separated, no header) and the titles (u.item is
#    latin-1 and '|' separated, title in the second column). Items are identified by their title.
ratings = pd.read_csv(DATA / "u.data", sep="\t", header=None, names=["user", "movie", "rating", "timestamp"])
movies = pd.read_csv(DATA / "u.item", sep="|", header=None, encoding="latin-1", usecols=[0, 1],
                     names=["movie", "title"])
ratings = ratings.merge(movies, on="movie")
print(f"{len(ratings)} ratings of {ratings.title.nunique()} movies by {ratings.user.nunique()} users")

# 2. DataLoaders: ids mapped to contiguous indices (vocabularies in dls.classes), 80/20 random split.
dls = CollabDataLoaders.from_df(ratings, user_name="user", item_name="title", rating_name="rating",
                                valid_pct=0.2, seed=42, bs=64, device="cpu")
print(dls, "suggested y_range:", dls.y_range)
dls.show_batch(5)

# 3. The model: rating = sigmoid_range(user_factors . movie_factors + user_bias + movie_bias, 0, 5.5).
learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
# At tiny learning rates these small embeddings barely move, so the loss is flat noise: start the sweep
# at 1e-5 and give it 300 batches (the default 1e-7 .. 10 over 100 batches suggests a useless ~1e-7 here).
lrs = learn.lr_find(start_lr=1e-5, end_lr=1.0, num_it=300)
print("lr_find:", lrs, "-> we train at 5e-3, just below the suggested valley, as in the lesson")
learn.recorder.plot_lr_find(fname=OUT / "lr_find.png")

t0 = time.perf_counter()
learn.fit_one_cycle(EPOCHS, 5e-3, wd=0.1)
print(f"trained {EPOCHS} epochs in {time.perf_counter() - t0:.1f}s; "
      f"valid MSE {learn.recorder.log[-1]['valid_loss']:.4f}")
learn.recorder.plot_loss(fname=OUT / "loss.png")

# 4. Biases: a movie's bias is how much it is liked beyond what its factors explain. Among the 1000 most
#    rated movies:
print("\nlowest biases (even people who like this kind of movie don't like these):")
print(learn.least_biased(10, among=1000).to_string(index=False))
print("\nhighest biases (liked even by people who don't usually like this kind):")
print(learn.most_biased(10, among=1000).to_string(index=False))

# 5. The main directions of the movie factors, and a map of the movies along the first two.
pca = learn.pca(3, among=1000)
for c in ("pc1", "pc2"):
    s = pca.sort_values(c)
    print(f"\n{c} one end: {', '.join(s.title[:5])}\n{c} other end: {', '.join(s.title[-5:])}")
learn.plot_pca(1, 2, n=50, among=1000, fname=OUT / "pca.png")
print(f"\nPCA plot: {OUT / 'pca.png'}")

# 6. Recommendations (unseen movies only) and movies whose factors point the same way.
print("\nfor user 42:")
print(learn.recommend(42, n=10).to_string(index=False))
print("\nmost similar to 'Silence of the Lambs, The (1991)':")
print(learn.similar_items("Silence of the Lambs, The (1991)", n=5).to_string(index=False))

# 7. Export for inference and predict new (user, movie) pairs without the training data.
path = learn.export(OUT / "collab.safetensors")
inf = load_learner(path)
new = pd.DataFrame({"user": [42, 7], "title": ["Star Wars (1977)", "Toy Story (1995)"]})
preds, _ = inf.get_preds(dl=inf.dls.test_dl(new))
print("\n", inf.dls.decode_preds(preds, new).to_string(index=False))
print("one prediction:", inf.predict({"user": 42, "title": "Fargo (1996)"})[0])
