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
"""

from engine.search.config import DEFAULT_SYSTEM_PROMPT, STRATEGIES, SearchConfig
from engine.search.prm import PRM, ModelPRM, VerifierPRM, aggregate, load_prm
from engine.search.searcher import Completion, Searcher, SearchResult, default_prm
from engine.search.select import Candidate, Selection, choose_answer, choose_index, select, share, votes
from engine.search.tree import Node, SearchTree

__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "STRATEGIES", "SearchConfig", "PRM", "ModelPRM", "VerifierPRM", "aggregate", "load_prm",
    "Completion", "Searcher", "SearchResult", "default_prm", "Candidate", "Selection", "choose_answer", "choose_index", "select", "share",
    "votes", "Node", "SearchTree",
]
