"""LaPael latent paraphrasing (Kang et al., NeurIPS 2024): a small learned module that perturbs the
MLP inputs of the first decoder layers so that one sentence looks, to the upper layers, like a
distribution of its paraphrases.

- :mod:`~kinject.lapael.paraphraser`: the module, its hooks, saving and loading;
- :mod:`~kinject.lapael.targets`: the answer position and the paraphrase target cache;
- :mod:`~kinject.lapael.train`: ``kinject train-paraphraser`` (the LLM frozen, the module trained);
- the methods ``lapael`` and ``lapael+para`` live in :mod:`kinject.methods.lapael`.
"""
