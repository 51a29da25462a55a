"""``ttscale search``: best-of-N, majority, weighted best-of-N, beam search and DVTS from the command line.

    ttscale search "What is 12 * 13?" --strategy dvts --n 8 --beam-width 4 --json --tree tree.json

Every flag is checked (and a verifier imported) before any model loads; a bad value is one sentence.
"""

from __future__ import annotations

import json
import sys

from engine.cli.common import PromptOptions, check_output_file, finished_rows, interrupts_between_rows
from engine.cli.flags import SEARCH, SearchOptions
from engine.errors import TTScaleError
from engine.formats import FormatConfig
from engine.logits.budget import BudgetConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import ModelConfig
from engine.models import load_from_config
from engine.search.config import DEFAULT_SYSTEM_PROMPT, SearchConfig
from engine.search.prm import ModelPRM, VerifierPRM, load_prm
from engine.search.searcher import Searcher


def _prm(opts: SearchOptions, model: ModelConfig, config: SearchConfig, policy, verifier):
    """The scorer and a line describing it; the verifier was imported already."""
    if not config.uses_prm:
        return None, "none (majority voting needs no scores)"
    if verifier is not None:
        return verifier, f"verifier {opts.verifier}"
    if opts.prm is None or opts.prm == model.model and opts.prm_protocol != "qwen-prm":
        who = "the policy model itself" if opts.prm is None else opts.prm
        return ModelPRM(policy.model, policy.tokenizer, opts.prm_protocol), f"{who} under {opts.prm_protocol} (weights shared with the policy)"
    prm = load_prm(opts.prm, opts.prm_protocol, model.trust_remote_code, dtype=model.dtype, device=model.device)
    return prm, f"{opts.prm} under {opts.prm_protocol}"


def run(args) -> int:
    """``ttscale search``: validate everything (the ``--tree`` location included), load the policy and the PRM, then
    search batch by batch, printing each batch's rows and rewriting the tree as soon as the batch finishes.

    Refuses bad flags and an unwritable ``--tree`` before any model loads. Interrupted (Ctrl-C), it says on stderr how
    many rows were finished and where they are, then exits 130.
    """
    c = SEARCH.build(args)
    config, opts, sampling, fmt, model = c[SearchConfig], c[SearchOptions], c[SamplingConfig], c[FormatConfig], c[ModelConfig]
    prompts = c[PromptOptions].prompts()
    if sampling.greedy and config.n > 1:
        raise TTScaleError(f"--temperature 0 is greedy, so the {config.n} candidates of {config.strategy} would be identical; "
                           "use a --temperature above 0 (search's default is 0.8) or --n 1")
    fmt.thinking_format()  # the format flags are checked before the model loads; auto is chosen after
    verifier = VerifierPRM.from_spec(opts.verifier) if opts.verifier else None
    if opts.tree:
        check_output_file(opts.tree, "--tree")
    policy = load_from_config(model)
    thinking = fmt.thinking_format(policy.tokenizer, model.model)  # auto: chosen from the tokenizer
    prm, prm_line = _prm(opts, model, config, policy, verifier)
    system = DEFAULT_SYSTEM_PROMPT if fmt.system is None else (fmt.system or None)
    searcher = Searcher(policy.model, policy.tokenizer, config, prm=prm, sampling=sampling, budget=c[BudgetConfig], format=thinking,
                        system=system, template=fmt.template, max_kv_tokens=opts.max_kv_tokens)
    shape = {"beam": f", M={config.beam_width} (keep {config.n // config.beam_width})",
             "dvts": f", M={config.beam_width} ({config.n // config.beam_width} subtrees)"}.get(config.strategy, "")
    forcing = "; budget forcing on" if searcher.budget else ""
    print(f"ttscale: {config.strategy} N={config.n}{shape}, up to {config.max_steps} steps of <= {config.max_step_tokens} tokens, "
          f"T={sampling.temperature}; model {model.model}; PRM: {prm_line}{forcing}", file=sys.stderr)
    done, nodes = 0, None
    try:
        for batch in searcher.iter_search(prompts, progress=True):
            with interrupts_between_rows():  # a Ctrl-C waits for the batch's tree and its rows
                if opts.tree:  # after every batch, atomically: a crash leaves the last complete tree
                    nodes = batch[0].tree.write(opts.tree)
                for r in batch:
                    if opts.json:
                        print(json.dumps({**r.to_json(), "prm": prm_line}, ensure_ascii=False))
                    else:
                        print_result(r, sys.stdout)
                    done += 1
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
        where = finished_rows(done)
        if nodes is not None:
            where += f"; {opts.tree} holds their search tree ({nodes} nodes)"
        print(f"ttscale: interrupted after {done} of {len(prompts)} rows; {where}", file=sys.stderr)
        raise
    if opts.tree:
        print(f"ttscale: wrote {nodes} search-tree nodes to {opts.tree}", file=sys.stderr)
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
