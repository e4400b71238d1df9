"""Tabular lesson: predict whether a person earns more than $50K from the adult census table, with
entity embeddings for the categorical columns; then look inside the model (which columns matter, what
the embeddings learned) and reuse the embeddings in a random forest.

Run: python examples/tabular_adult.py   (reads $DEEPFIT_DATA/adult/adult.csv, default ../shared/data;
writes plots and the exported model to $DEEPFIT_OUT or ./runs/tabular_adult)
"""
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepfit import load_learner, set_seed
from deepfit.tabular import TabularDataLoaders, cont_cat_split, tabular_learner

set_seed(42)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT = Path(os.environ.get("DEEPFIT_OUT", "runs/tabular_adult"))
OUT.mkdir(parents=True, exist_ok=True)

# 1. The table. Missing answers are written "?" in this file: kept as their own category.
df = pd.read_csv(DATA / "adult" / "adult.csv")
print(f"data: {DATA / 'adult' / 'adult.csv'}: {len(df)} rows, {df.shape[1]} columns")
cont, cat = cont_cat_split(df, max_card=20, dep_var="class")   # a first guess at the column roles
print("guessed continuous:", cont)
cat_names = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
             "native-country"]
cont_names = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]

# 2. Preprocessing fitted on the training rows only (Categorify, FillMissing, Normalize), the whole
#    table encoded once into tensors.
t0 = time.perf_counter()
dls = TabularDataLoaders.from_df(df, cat_names=cat_names, cont_names=cont_names, y_names="class",
                                 valid_pct=0.2, seed=42, bs=64)
print(f"preprocessing: {time.perf_counter() - t0:.3f}s; classes {dls.classes}")
dls.show_batch(5)

# 3. The model: one embedding per categorical column, batch-normed continuous inputs, layers [200, 100].
learn = tabular_learner(dls, layers=[200, 100], path=OUT)          # metric: accuracy
print(learn.model)
print(learn.lr_find())
learn.fit_one_cycle(3, 1e-2)
learn.recorder.plot_loss(fname=OUT / "loss.png")
print(f"accuracy {learn.recorder.log[-1]['accuracy']:.4f}")

# 4. Predictions on raw rows: a dict or Series, or a whole DataFrame (unseen categories and missing
#    values are handled by the fitted preprocessing).
row = df.iloc[0].drop("class")
label, _, probs = learn.predict(row)
print(f"first row: predicted {label} (p={probs.max().item():.3f}), true {df['class'].iloc[0]}")
odd = {"age": 40, "workclass": "Astronaut", "fnlwgt": np.nan, "education": "Masters", "education-num": 14,
       "marital-status": "Never-married", "occupation": None, "relationship": "Not-in-family", "race": "White",
       "sex": "Female", "capital-gain": 0, "capital-loss": 0, "hours-per-week": 50, "native-country": "Mars"}
print("a row with unseen categories and gaps:", learn.predict(odd)[0])
test = df.sample(8, random_state=1).drop(columns=["class"])
preds, _ = learn.get_preds(test)
print(dls.decode_preds(preds, test)[["age", "education", "occupation", "prediction", "prob_>50K"]])

# 5. Which columns matter: shuffle each column of the validation rows and watch the loss grow.
fi = learn.feature_importance()
print(fi)
learn.plot_feature_importance(fi, fname=OUT / "importance.png")

# 6. What the embeddings learned; a 2-D projection of the occupations.
print(learn.embeddings("occupation").round(3).head(8))
learn.plot_embedding("occupation", fname=OUT / "occupation.png")

# 7. The embeddings as features for a random forest (the Rossmann paper's trick).
try:
    from sklearn.ensemble import RandomForestClassifier
except ImportError:  # pragma: no cover
    RandomForestClassifier = None
if RandomForestClassifier is not None:
    feats = learn.embed_features(df[cat_names + cont_names])
    raw = df[cat_names + cont_names].apply(lambda c: c.astype("category").cat.codes if c.name in cat_names else c)
    tr, va = dls.train_idx, dls.valid_idx
    y = df["class"].to_numpy()
    for name, X in (("category codes", raw), ("learned embeddings", feats)):
        rf = RandomForestClassifier(n_estimators=60, min_samples_leaf=3, n_jobs=-1, random_state=0)
        rf.fit(X.iloc[tr], y[tr])
        print(f"random forest on {name}: accuracy {rf.score(X.iloc[va], y[va]):.4f}")

# 8. Export for inference: one safetensors file (weights + preprocessing state, no pickle).
path = learn.export("adult.safetensors")
inference = load_learner(path)
print("exported model predicts:", inference.predict(row)[0])
