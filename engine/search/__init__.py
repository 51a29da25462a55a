"""engine/search: test-time search strategies over the prefix-sharing KV cache, scored by process reward models.

    from engine.search import Searcher, SearchConfig, load_prm
    searcher = Searcher(model, tokenizer, SearchConfig("dvts", n=16, beam_width=4), prm=load_prm(...))
    result = searcher.search("What is 12 * 13?")[0]

Modules, one concept each:

- ``config``        — ``SearchConfig``: strategy, N, M, depth, caps; how each strategy groups its candidates
- ``expand``        — ``Expander``: extend branches by whole steps in one decode loop (sampling, budget forcing)
- ``select``        — ``select``/``share``/``choose_answer``: pure functions of scores, no model
- ``tree``          — ``SearchTree``: every node explored, kept or pruned, as JSON
- ``searcher``      — ``Searcher``: the loop expand → score → select → prune, and ``SearchResult``
- ``prm``, ``prm_protocols``, ``verifiers`` — process reward models and programmatic step verifiers

The names below are exported lazily (PEP 562), so that importing ``engine.search.config`` (as the torch-free
flags of ``ttscale search`` do) does not import torch.
"""

from engine.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_SYSTEM_PROMPT": "engine.search.config",
    "STRATEGIES": "engine.search.config",
    "SearchConfig": "engine.search.config",
    "PRM": "engine.search.prm",
    "ModelPRM": "engine.search.prm",
    "VerifierPRM": "engine.search.prm",
    "aggregate": "engine.search.prm",
    "load_prm": "engine.search.prm",
    "Completion": "engine.search.searcher",
    "Searcher": "engine.search.searcher",
    "SearchResult": "engine.search.searcher",
    "default_prm": "engine.search.searcher",
    "Candidate": "engine.search.select",
    "Selection": "engine.search.select",
    "choose_answer": "engine.search.select",
    "choose_index": "engine.search.select",
    "select": "engine.search.select",
    "share": "engine.search.select",
    "votes": "engine.search.select",
    "Node": "engine.search.tree",
    "SearchTree": "engine.search.tree",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_exports("engine.search", _EXPORTS, globals())
