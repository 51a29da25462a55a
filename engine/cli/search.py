"""``ttscale search``: best-of-N, majority, weighted best-of-N, beam search and DVTS from the command line.

    ttscale search "What is 12 * 13?" --strategy dvts --n 8 --beam-width 4 --json --tree tree.json

Every flag is checked (and a verifier imported) before any model loads; a bad value is one sentence.
"""

from __future__ import annotations

import json
import os
import sys

from engine.cli.common import (
    add_budget_args,
    add_format_args,
    add_model_args,
    add_sampling_args,
    budget_from_args,
    gather_prompts,
    sampling_from_args,
)
from engine.errors import TTScaleError
from engine.formats import get_format
from engine.models import load_model
from engine.search.config import DEFAULT_SYSTEM_PROMPT, SearchConfig
from engine.search.prm import ModelPRM, VerifierPRM, load_prm
from engine.search.prm_protocols import PROTOCOLS
from engine.search.searcher import Searcher


def add_parser(sub) -> None:
    """Register ``search`` on the ``ttscale`` subcommands."""
    d = SearchConfig()
    p = sub.add_parser(
        "search", help="search with a process reward model: best-of-n, majority, weighted, beam, dvts",
        description="Test-time search over a prefix-sharing KV cache (REFERENCE §3). Without --prm or --verifier the "
                    "policy model itself scores steps under the rlhflow protocol (a stand-in sharing its weights; no "
                    "PRM weights ship offline). The system prompt defaults to search-and-learn's step-by-step prompt.")
    p.add_argument("prompt", nargs="*", help="problem text (several allowed)")
    p.add_argument("--prompts-file", default=None, help="file with one prompt per line, or JSONL with a prompt/question/problem field")
    g = p.add_argument_group("search")
    g.add_argument("--strategy", default=d.strategy, help="best-of-n, majority, weighted, beam or dvts (default %(default)s)")
    g.add_argument("--n", type=int, default=d.n, help="samples, or candidates per step for beam/dvts (default %(default)s)")
    g.add_argument("--beam-width", type=int, default=d.beam_width,
                   help="M: beam keeps N/M and each survivor expands M; dvts runs N/M subtrees of M (default %(default)s)")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="steps per branch; the last runs to the end (default %(default)s)")
    g.add_argument("--max-step-tokens", type=int, default=d.max_step_tokens, help="token cap of one step (default %(default)s)")
    g.add_argument("--lookahead", type=int, default=0, help="k greedy steps scored and thrown away (beam, dvts; default 0)")
    g.add_argument("--agg", default=d.agg, help="step-score aggregation: last, min, prod, mean (default %(default)s)")
    g.add_argument("--prm", default=None, metavar="P",
                   help="PRM model (hub id, directory, embedded name); default: the policy model itself under --prm-protocol")
    g.add_argument("--prm-protocol", default="rlhflow", help=", ".join(PROTOCOLS) + " (default %(default)s)")
    g.add_argument("--verifier", default=None, metavar="MODULE:FUNCTION",
                   help="programmatic step verifier instead of a PRM, e.g. engine.search.verifiers:arithmetic")
    g.add_argument("--batch-problems", type=int, default=d.batch_problems, help="problems searched together (default %(default)s)")
    g.add_argument("--max-kv-tokens", type=int, default=None,
                   help="cap on KV-cache tokens; fewer problems are searched together so the worst case fits (default: no cap)")
    g.add_argument("--no-dedup", action="store_true", help="keep candidates whose text duplicates another's")
    g.add_argument("--json", action="store_true", help="one JSON object per prompt")
    g.add_argument("--tree", default=None, metavar="FILE", help="write the whole search tree (every node, kept or pruned) as JSON")
    add_model_args(p)
    add_format_args(p)
    add_budget_args(p)
    add_sampling_args(p)
    p.set_defaults(func=run, temperature=0.8)


def _config(args):
    return SearchConfig(strategy=args.strategy, n=args.n, beam_width=args.beam_width, max_steps=args.max_steps,
                        max_step_tokens=args.max_step_tokens, lookahead=args.lookahead, agg=args.agg,
                        filter_duplicates=not args.no_dedup, batch_problems=args.batch_problems)


def _prm(args, config, policy):
    """The scorer and a line describing it; the verifier was imported already (``verifier``)."""
    if not config.uses_prm:
        return None, "none (majority voting needs no scores)"
    if args.verifier:
        return args.verifier_prm, f"verifier {args.verifier}"
    if args.prm is None or args.prm == args.model and args.prm_protocol != "qwen-prm":
        who = "the policy model itself" if args.prm is None else args.prm
        return ModelPRM(policy.model, policy.tokenizer, args.prm_protocol), f"{who} under {args.prm_protocol} (weights shared with the policy)"
    prm = load_prm(args.prm, args.prm_protocol, args.trust_remote_code, dtype=args.dtype, device=args.device)
    return prm, f"{args.prm} under {args.prm_protocol}"


def run(args) -> int:
    """``ttscale search``: validate everything, load the policy and the PRM, search, print."""
    prompts = gather_prompts(args)
    config = _config(args)
    sampling, budget = sampling_from_args(args), budget_from_args(args)
    fmt = get_format(args.format, args.think_start, args.think_end)
    if args.max_kv_tokens is not None and args.max_kv_tokens < 1:
        raise TTScaleError(f"--max-kv-tokens must be >= 1 (or unset for no cap), got {args.max_kv_tokens}")
    if args.prm is not None and args.verifier is not None:
        raise TTScaleError("--prm and --verifier both given; score with a PRM model or with a verifier, not both")
    if args.verifier is None and args.prm_protocol not in PROTOCOLS:
        raise TTScaleError(f"--prm-protocol {args.prm_protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}, "
                           "or --verifier module:function for a programmatic checker")
    args.verifier_prm = VerifierPRM.from_spec(args.verifier) if args.verifier else None
    folder = os.path.dirname(os.path.abspath(args.tree)) if args.tree else None
    if folder and not os.path.isdir(folder):
        raise TTScaleError(f"--tree {args.tree}: the folder {folder} does not exist; create it or give another path")
    policy = load_model(args.model, dtype=args.dtype, device=args.device, device_map=args.device_map,
                        attn_implementation=args.attn, quantization=args.quantization, trust_remote_code=args.trust_remote_code)
    prm, prm_line = _prm(args, config, policy)
    system = DEFAULT_SYSTEM_PROMPT if args.system is None else (args.system or None)
    searcher = Searcher(policy.model, policy.tokenizer, config, prm=prm, sampling=sampling, budget=budget, format=fmt,
                        system=system, template=args.template, max_kv_tokens=args.max_kv_tokens)
    shape = {"beam": f", M={config.beam_width} (keep {config.n // config.beam_width})",
             "dvts": f", M={config.beam_width} ({config.n // config.beam_width} subtrees)"}.get(config.strategy, "")
    forcing = "; budget forcing on" if searcher.budget else ""
    print(f"ttscale: {config.strategy} N={config.n}{shape}, up to {config.max_steps} steps of <= {config.max_step_tokens} tokens, "
          f"T={sampling.temperature}; model {args.model}; PRM: {prm_line}{forcing}", file=sys.stderr)
    results = searcher.search(prompts, progress=True)
    if args.tree:
        n = results[0].tree.write(args.tree)
        print(f"ttscale: wrote {n} search-tree nodes to {args.tree}", file=sys.stderr)
    for r in results:
        if args.json:
            print(json.dumps({**r.to_json(), "prm": prm_line}, ensure_ascii=False))
        else:
            print_result(r, sys.stdout)
    return 0


def print_result(r, out) -> None:
    """A readable summary: answer, votes, the best completion in full, one line per other completion, costs."""
    print(f"━━ {r.question}", file=out)
    print(f"answer: {r.answer}   ({r.strategy}; votes: " + ", ".join(f"{k} {v}" for k, v in r.votes.items()) + ")", file=out)
    for i, c in enumerate(r.completions):
        score = "-" if c.score is None else f"{c.score:.3f}"
        steps = "" if c.step_scores is None else " [" + " ".join(f"{s:.2f}" for s in c.step_scores) + "]"
        print(f"── completion {i + 1}/{len(r.completions)}: score {score}{steps}, {len(c.steps)} steps, {c.tokens} tokens, "
              f"{c.finish_reason}, answer {c.answer}", file=out)
        if i == 0:
            print(c.text.strip(), file=out)
    print(f"── cost: policy forward tokens {r.policy_forward_tokens} (tree {r.tree_tokens}), PRM forward tokens "
          f"{r.prm_forward_tokens}, peak KV {r.peak_kv_bytes / 2**20:.1f} MiB, {r.wall_s:.1f} s", file=out)
    print(file=out)
