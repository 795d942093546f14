"""Search as named pipelines of stages.

::

    analyze -> retrievers (bm25, dense) -> fusion (rrf, weighted) -> second stages
            (cross_encoder, personal) -> shape (documents, explanations, facets)

- :mod:`~shopsearch.search.analysis`: the query analysis stage (:class:`QueryAnalyzer`);
- :mod:`~shopsearch.search.retrievers`: BM25 and dense retrievers;
- :mod:`~shopsearch.search.fusion`: reciprocal-rank and weighted fusion;
- :mod:`~shopsearch.search.rerankers`: the cross-encoder and personal stages;
- :mod:`~shopsearch.search.shaping`: documents, explanations, facets;
- :mod:`~shopsearch.search.spec`: pipelines as text, the built-ins;
- :mod:`~shopsearch.search.runner`: running a named pipeline (:class:`PipelineSet`);
- :mod:`~shopsearch.search.models`: the models later stages load on first use;
- :mod:`~shopsearch.search.state`, :mod:`~shopsearch.search.types`: what flows through.
"""
