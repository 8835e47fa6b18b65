"""The reproducible training recipe of the package's default model (ECG -> text and text -> ECG).

``python -m uniecg_edge.training.recipe --seed 0 --out DIR [--preset smoke|student|small|teacher] [--resume]``
runs, in order: a synthetic data set with ground truth (:mod:`.dataset`), evidence-based reports written from
that truth (:mod:`.reports`), sentence embeddings of the reports (:mod:`.text_embed`), stage 1 (ECG -> report:
tokenizer, encoder, projector, LLM; :mod:`.stage1`) and stage 2 (VAE, text-conditioned UNet, [ECG]-token
alignment; :mod:`.stage2`), then writes a :class:`~uniecg_edge.model.uniecg.UniEcgModel` checkpoint.

Heavy imports (torch, transformers, sentence-transformers) happen inside the modules that need them; importing
this package costs nothing.
"""

from __future__ import annotations
