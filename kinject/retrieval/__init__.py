"""Retrieval: an embedder, chunking, a persisted FAISS index with its docstore, and a retriever.

``retriever.Retriever`` is what the ``rag`` methods use; ``kinject index build/query`` exposes
the same parts on the command line.
"""
