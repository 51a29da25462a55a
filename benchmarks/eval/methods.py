"""How each evaluation method turns one unit of work into graded rows (the runner is ``benchmarks.eval.runner``).

    budget              ThinkingEngine, greedy, BudgetConfig from the setting (max / min thinking, ignores)   s1 §3.1
    token-conditional   question + "Think for up to N tokens."; no forcing                                      s1 App. E
    step-conditional    question + "Think for up to N steps."; a countdown line before each step
                        (engine/logits/countdown.py), no forcing                                                 s1 App. E
    class-conditional   question + the short / long instruction; no forcing                                    s1 App. E
    rejection           T = 1 samples until thinking <= N (at most --max-tries); the last sample if none fits   s1 §3.1
    majority, best-of-n, weighted   one search of max(N) width-1 samples per problem (``Searcher``), shared by the
                        three rules; N = n uses the *first n* samples in generation order (nested prefixes)
    beam, dvts          one ``Searcher`` run per N (M = --beam-width), answer of the best-scored completion
    compute-optimal     derived from the rows above (``derive_rows``)                                            search-and-learn

Sequential methods are greedy, as in s1's evaluation (REFERENCE §1). Without a thinking budget (the prompt-only
baselines) a generation is bounded by --max-new-tokens and its answer by --max-answer-tokens. Every prompt is the
question rendered by the same format, template and system message, so the parallel methods (which also open thinking,
with --parallel-max-thinking as their optional cap) see the same prompt as the sequential ones.

Grading (``Context.extract`` / ``Context.is_correct``, i.e. ``benchmarks.eval.grading.Grader``): choice problems by letter (``extract_choice``); synthetic
problems by number (``benchmarks.data.synthetic.read_answer``); everything else with ``extract_answer`` and math-verify
(``is_equivalent``). ``thinking_tokens`` of a parallel row is summed over its N samples; ``wall_s`` of a row is its
share of the unit's wall time (a pool's time is shared in proportion to n).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from benchmarks.eval.config import CLASSES, DERIVED, SCORED, EvalConfig, Unit
from benchmarks.eval.grading import Grader
from benchmarks.eval.store import PARALLEL_METHODS, new_row, read_samples
from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.formats import FormatConfig, end_of_turn_ids
from engine.logits.budget import BudgetConfig
from engine.logits.countdown import CountdownProcessor
from engine.logits.sampling import SamplingConfig
from engine.models import load_model
from engine.search import SearchConfig, Searcher
from engine.search.prm import ModelPRM, VerifierPRM, load_prm
from engine.search.prm_protocols import PROTOCOLS
from engine.search.select import choose_index

TOKEN_SUFFIX = "\n\nThink for up to {n} tokens."
STEP_SUFFIX = "\n\nThink for up to {n} steps."
CLASS_SUFFIX = {  # s1 App. E, verbatim
    "short": "\n\nAnswer after a short amount of thinking. Do not spend excessive time double-checking your work.",
    "long": "\n\nAnswer after a long amount of thinking. If you feel like you are finished early, spend the extra time "
            "trying to double-check your work until you are absolutely sure that you have the correct answer.",
}
assert set(CLASS_SUFFIX) == set(CLASSES)
SCORERS = (*PROTOCOLS, "verifier")  # the PRM protocols of engine.search.prm_protocols, or a Python verifier
RULE = {"majority": "majority", "best-of-n": "best", "weighted": "weighted", "beam": "best", "dvts": "best"}


# ---------------------------------------------------------------------------------------------- context
@dataclass
class Context:
    """The loaded policy, its engine and format, the grader and (lazily) the PRM: what every executor needs."""

    config: EvalConfig
    model: object
    tokenizer: object
    engine: object
    end_ids: tuple
    grader: Grader
    device_args: dict = field(default_factory=dict)
    _prm: object = None
    _searchers: dict = field(default_factory=dict)

    @classmethod
    def build(cls, config: EvalConfig, model=None, tokenizer=None, device: str = "auto", device_map=None, attn: str = "auto",
              trust_remote_code: bool = False) -> "Context":
        """Load ``config.model`` (unless a model and tokenizer are given) and wrap it in a ``ThinkingEngine``."""
        settings = FormatConfig(config.format, config.think_start, config.think_end, config.template, config.system)
        if model is None or tokenizer is None:
            lm = load_model(config.model, dtype=config.dtype, device=device, device_map=device_map, attn_implementation=attn,
                            quantization=config.quantization, trust_remote_code=trust_remote_code)
            model, tokenizer = lm.model, lm.tokenizer
        fmt, why = settings.choose(tokenizer, config.model)  # auto: from the tokenizer, as `ttscale generate` chooses
        engine = ThinkingEngine(model, tokenizer, format=fmt, template=config.template, system=config.system, format_reason=why)

        return cls(config=config, model=model, tokenizer=tokenizer, engine=engine,
                   end_ids=end_of_turn_ids(tokenizer, model.generation_config.eos_token_id),
                   grader=Grader.for_run(config.dataset, fmt.think_end),
                   device_args={"device": device, "trust_remote_code": trust_remote_code})

    # ---- grading (benchmarks.eval.grading: the same rules as `ttscale eval report --regrade`)
    def extract(self, problem, text: str | None) -> str | None:
        """The answer a generation commits to, read the way this problem is graded."""
        return self.grader.extract(problem, text)

    def is_correct(self, problem, answer: str | None) -> bool:
        """Whether ``answer`` is right for ``problem`` (:meth:`benchmarks.eval.grading.Grader.is_correct`)."""
        return self.grader.is_correct(problem, answer)

    # ---- generation helpers
    def text(self, token_ids: list[int]) -> str:
        """The generated text, special tokens kept (delimiters), end-of-turn tokens left out."""
        return self.tokenizer.decode([t for t in token_ids if t not in self.end_ids], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)

    def prm(self):
        """The scorer of best-of-n / weighted / beam / dvts, loaded once (see ``--prm``, ``--prm-protocol``)."""
        if self._prm is None:
            self._prm = load_scorer(self.config, self.model, self.tokenizer, **self.device_args)
        return self._prm

    def searcher(self, strategy: str, n: int, batch: int, seed: int):
        """A ``Searcher`` for this strategy and N (built once, so the KV self-check runs once), seeded for this unit."""
        cfg = self.config
        sampling = SamplingConfig(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, seed=seed)
        key = (strategy, n, batch)
        if key not in self._searchers:
            sc = SearchConfig(strategy=strategy, n=n, beam_width=cfg.beam_width, max_steps=cfg.max_steps,
                              max_step_tokens=cfg.max_step_tokens, batch_problems=batch)
            budget = BudgetConfig(max_thinking_tokens=cfg.parallel_max_thinking, max_answer_tokens=cfg.max_answer_tokens)
            prm = self.prm() if sc.uses_prm else None
            self._searchers[key] = Searcher(self.model, self.tokenizer, sc, prm=prm, sampling=sampling, budget=budget,
                                            format=self.engine.format, system=self.config.system, template=self.config.template)
        searcher = self._searchers[key]
        searcher.sampling = sampling  # read at the start of every search(): the unit's own seed
        return searcher


def check_scorer(config: EvalConfig) -> None:
    """Refuse a bad ``--prm-protocol`` / ``--prm`` before anything loads (imports a verifier, loads no model)."""
    if not any(m in SCORED for m in config.methods) and "compute-optimal" not in config.methods:
        return
    if config.prm_protocol not in SCORERS:
        raise TTScaleError(f"--prm-protocol {config.prm_protocol!r} is unknown; use one of {', '.join(SCORERS)}")
    if config.prm_protocol == "verifier":
        if not config.prm:
            raise TTScaleError("--prm-protocol verifier needs --prm module:function, e.g. --prm benchmarks.data.synthetic:check_steps")

        VerifierPRM.from_spec(config.prm)


def load_scorer(config: EvalConfig, model, tokenizer, device: str = "auto", trust_remote_code: bool = False):
    """The PRM: the policy itself under ``--prm-protocol`` when ``--prm`` is not given (a stand-in sharing its weights),
    a verifier for ``--prm-protocol verifier``, else the named model. Refuses what ``check_scorer`` and ``load_prm`` refuse."""
    check_scorer(config)
    if config.prm is None:
        return ModelPRM(model, tokenizer, config.prm_protocol)
    return load_prm(config.prm, config.prm_protocol, trust_remote_code, dtype=config.dtype, device=device)


# -------------------------------------------------------------------------------------------- executors
def run_unit(ctx: Context, unit: Unit) -> list[dict]:
    """The graded rows of one unit (one per problem and output). Refuses an unknown unit kind."""
    if unit.kind not in EXECUTORS:
        raise TTScaleError(f"no executor for unit kind {unit.kind!r}; known: {', '.join(EXECUTORS)}")
    return EXECUTORS[unit.kind](ctx, unit)


def _greedy():
    return SamplingConfig()


def _sequential_rows(ctx: Context, unit: Unit, questions: list[str], results: list, wall: float,
                     extras: list[dict] | None = None) -> list[dict]:
    (method, setting), = unit.outputs
    rows = []
    for i, (p, q, r) in enumerate(zip(unit.problems, questions, results)):
        text = ctx.text(r.token_ids)
        answer = ctx.extract(p, text)
        extra = {"waits_injected": r.waits_injected, "forced_stop": r.forced_stop, "finish_reason": r.finish_reason,
                 "forced_tokens": r.forced_tokens, **(extras[i] if extras else {})}
        rows.append(new_row(p.id, method, setting, compute=r.thinking_tokens, correct=ctx.is_correct(p, answer),
                            prompt=ctx.engine.render(q), generation=text, extracted=answer, gold=p.answer,
                            thinking_tokens=r.thinking_tokens, answer_tokens=r.answer_tokens,
                            wall_s=round(wall / len(unit.problems), 4), extra=extra))
    return rows


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run_budget(ctx: Context, unit: Unit) -> list[dict]:
    """Budget forcing, greedy: the setting is the BudgetConfig (s1 §3.1)."""
    cfg = ctx.config
    (_, s), = unit.outputs
    budget = BudgetConfig(min_thinking_tokens=s.get("min_thinking_tokens", 0), max_thinking_tokens=s.get("max_thinking_tokens"),
                          num_ignore=s.get("num_ignore", 0), max_answer_tokens=cfg.max_answer_tokens)
    questions = [p.question for p in unit.problems]
    cap = None if budget.max_thinking_tokens else cfg.max_new_tokens  # with a cap the engine sizes the call itself
    results, wall = _timed(ctx.engine.generate, questions, budget, _greedy(), batch_size=len(questions), max_new_tokens=cap)
    return _sequential_rows(ctx, unit, questions, results, wall)


def run_prompted(ctx: Context, unit: Unit) -> list[dict]:
    """Token-, step- and class-conditional: the instruction appended to the question; step-conditional also writes
    the countdown before each step. No thinking budget: the model alone decides when to stop."""
    cfg = ctx.config
    (method, s), = unit.outputs
    if method == "token-conditional":
        suffix = TOKEN_SUFFIX.format(n=s["max_thinking_tokens"])
    elif method == "step-conditional":
        suffix = STEP_SUFFIX.format(n=s["steps"])
    else:
        suffix = CLASS_SUFFIX[s["class"]]
    questions = [p.question + suffix for p in unit.problems]
    kwargs, countdown = {}, None
    if method == "step-conditional":
        countdown = CountdownProcessor(ctx.tokenizer, s["steps"], ctx.engine.format.think_end,
                                       vocab_size=ctx.model.config.vocab_size)
        kwargs["prefix_allowed_tokens_fn"] = countdown.allowed_tokens
    budget = BudgetConfig(max_answer_tokens=cfg.max_answer_tokens)
    results, wall = _timed(ctx.engine.generate, questions, budget, _greedy(), batch_size=len(questions),
                           max_new_tokens=cfg.max_new_tokens, **kwargs)
    extras = None
    if countdown is not None:
        extras = [{"countdown_lines": st.inserted} for st in countdown.states]
    return _sequential_rows(ctx, unit, questions, results, wall, extras)


def run_rejection(ctx: Context, unit: Unit) -> list[dict]:
    """Rejection sampling (s1 §3.1): sample at T = --rejection-temperature until thinking fits in N tokens.

    A thinking cap of N + 1 stops samples that are already rejected (they are never kept); a sample is accepted when
    the model ended thinking by itself within N tokens. After --max-tries the last sample is kept, marked
    ``accepted: false`` (so Control and ``within_budget`` show it)."""
    cfg = ctx.config
    (_, s), = unit.outputs
    limit = s["max_thinking_tokens"]
    budget = BudgetConfig(max_thinking_tokens=limit + 1, max_answer_tokens=cfg.max_answer_tokens)
    questions = [p.question for p in unit.problems]
    kept: list = [None] * len(questions)
    tries, accepted = [0] * len(questions), [False] * len(questions)
    pending, seed, t0 = list(range(len(questions))), unit.seed(cfg.seed), time.perf_counter()
    for attempt in range(cfg.max_tries):
        if not pending:
            break
        sampling = SamplingConfig(temperature=cfg.rejection_temperature, seed=seed + attempt)
        results = ctx.engine.generate([questions[i] for i in pending], budget, sampling, batch_size=len(pending))
        still = []
        for i, r in zip(pending, results):
            kept[i], tries[i] = r, attempt + 1
            accepted[i] = not r.forced_stop and r.thinking_tokens <= limit
            if not accepted[i]:
                still.append(i)
        pending = still
    wall = time.perf_counter() - t0
    extras = [{"accepted": a, "tries": t} for a, t in zip(accepted, tries)]
    return _sequential_rows(ctx, unit, questions, kept, wall, extras)


def _sample_tokens(c) -> tuple[int, int]:
    """(thinking, answer) tokens of one search completion (all tokens count as thinking without budget forcing)."""
    if c.budget:
        return int(c.budget["thinking_tokens"]), int(c.budget["answer_tokens"])
    return int(c.tokens), 0


def _parallel_row(ctx: Context, problem, method: str, setting: dict, comps: list, prompt: str, wall: float,
                  extra: dict | None = None, keep_texts: bool = False) -> dict:
    """One parallel row: the rule of ``method`` picks an answer among ``comps`` (in generation order).

    ``keep_texts`` stores every sample's text (``extra.texts``) so that ``eval report --regrade`` can read and vote
    again: a pool keeps them once per method, in its largest-N row (the smaller N take its first n); beam and DVTS in
    every row."""
    answers = [ctx.extract(problem, c.text) for c in comps]
    scores = [c.score for c in comps]
    pick = choose_index(answers, scores, RULE[method])   # the one voting rule of engine.search.select
    chosen = None if pick is None else answers[pick]
    tokens = [_sample_tokens(c) for c in comps]
    thinking = sum(t for t, _ in tokens)
    return new_row(problem.id, method, setting, compute=setting["n"], correct=ctx.is_correct(problem, chosen), prompt=prompt,
                   generation=comps[pick].text if pick is not None else (comps[0].text if comps else ""), extracted=chosen, gold=problem.answer,
                   thinking_tokens=thinking, answer_tokens=sum(a for _, a in tokens), wall_s=round(wall, 4),
                   extra={"samples": len(comps), "answers": answers, "scores": scores,
                          "finish": [c.finish_reason for c in comps], **({"texts": [c.text for c in comps]} if keep_texts else {}),
                          **(extra or {})})


def run_pool(ctx: Context, unit: Unit) -> list[dict]:
    """Majority, best-of-n and weighted from one pool of max(N) samples per problem: N = n takes the first n."""
    methods = list(dict.fromkeys(m for m, _ in unit.outputs))
    ns = sorted({s["n"] for _, s in unit.outputs})
    strategy = "best-of-n" if any(m in SCORED for m in methods) else "majority"
    searcher = ctx.searcher(strategy, max(ns), len(unit.problems), unit.seed(ctx.config.seed))
    results, wall = _timed(searcher.search, [p.question for p in unit.problems])
    rows = []
    for p, r in zip(unit.problems, results):
        comps = sorted(r.completions, key=lambda c: c.node)  # generation order: the first n are a fair N = n sample
        prompt = searcher.render(p.question)
        for m, s in unit.outputs:
            share = wall / len(unit.problems) * s["n"] / max(ns)
            rows.append(_parallel_row(ctx, p, m, s, comps[: s["n"]], prompt, share,
                                      {"pool": max(ns), "policy_forward_tokens": r.policy_forward_tokens},
                                      keep_texts=s["n"] == max(ns)))
    return rows


def run_search(ctx: Context, unit: Unit) -> list[dict]:
    """Beam search or DVTS at one N (M = --beam-width): the best-scored completion's answer."""
    (method, s), = unit.outputs
    searcher = ctx.searcher(method, s["n"], len(unit.problems), unit.seed(ctx.config.seed))
    results, wall = _timed(searcher.search, [p.question for p in unit.problems])
    return [_parallel_row(ctx, p, method, s, sorted(r.completions, key=lambda c: c.node), searcher.render(p.question),
                          wall / len(unit.problems), {"policy_forward_tokens": r.policy_forward_tokens,
                                                      "prm_forward_tokens": r.prm_forward_tokens}, keep_texts=True)
            for p, r in zip(unit.problems, results)]


EXECUTORS = {"budget": run_budget, "token-conditional": run_prompted, "step-conditional": run_prompted,
             "class-conditional": run_prompted, "rejection": run_rejection, "pool": run_pool, "beam": run_search,
             "dvts": run_search}


# ---------------------------------------------------------------------------------------- compute-optimal
def difficulty_levels(scores: dict[str, float], levels: int = 5) -> dict[str, int]:
    """Problem id -> difficulty level 1 (easiest: highest mean PRM score) .. ``levels``, in near-equal quantile bins.

    Ties are broken by id, so the binning is deterministic. Fewer problems than levels give one problem per level.
    Refuses an empty mapping.
    """
    if not scores:
        raise TTScaleError("difficulty_levels() got no problems; the pilot produced no scores")
    order = sorted(scores, key=lambda pid: (-scores[pid], pid))
    k = min(levels, len(order))
    size, extra = divmod(len(order), k)
    out, at = {}, 0
    for level in range(k):
        width = size + (level < extra)
        for pid in order[at: at + width]:
            out[pid] = level + 1
        at += width
    return out


def derive_rows(config: EvalConfig, store) -> int:
    """Compute-optimal rows (search-and-learn), appended to ``store``: see :func:`compute_optimal_rows`. Returns the
    number of rows written (0 without compute-optimal, or when the other methods' rows are incomplete)."""
    if not any(m in DERIVED for m in config.methods):
        return 0
    rows = compute_optimal_rows(read_samples(store.out_dir), config.methods, config.ns, config.pilot_n)
    return sum(store.append(row) for row in rows)


def compute_optimal_rows(rows: list[dict], methods, ns, pilot_n: int) -> list[dict]:
    """Bin problems into 5 difficulty levels by the mean PRM score of the first ``pilot_n`` samples of the best-of-n /
    weighted pool, and at each N give every problem the row of the strategy with the best accuracy on its level.
    A pure function of the rows (``eval report --regrade`` derives them again from regraded rows); none when the other
    methods' rows are incomplete.

    The choice per level uses the run's own labels, as the blog does: an oracle upper bound of the selection, not a
    held-out estimate.
    """
    strategies = [m for m in PARALLEL_METHODS if m in methods and m not in DERIVED]
    by = {(r["method"], r["setting"].get("n"), r["problem_id"]): r for r in rows if r["method"] in strategies}
    ids = sorted({r["problem_id"] for r in rows if r["method"] in strategies})
    source = next(m for m in ("best-of-n", "weighted") if m in methods)
    top = max(ns)
    pilot = {}
    for pid in ids:
        r = by.get((source, top, pid))
        if r is None:
            return []  # the pool is incomplete (a process failed): resume the run to finish it
        scores = [s for s in (r.get("extra") or {}).get("scores", [])[:pilot_n] if s is not None]
        pilot[pid] = sum(scores) / len(scores) if scores else 0.0
    levels = difficulty_levels(pilot)
    out = []
    for n in ns:
        usable = [m for m in strategies if all((m, n, pid) in by for pid in ids)]
        if not usable:
            continue
        for level in sorted(set(levels.values())):
            members = [pid for pid in ids if levels[pid] == level]
            acc = {m: sum(by[(m, n, pid)]["correct"] for pid in members) / len(members) for m in usable}
            best = max(usable, key=lambda m: (acc[m], -usable.index(m)))
            for pid in members:
                base = by[(best, n, pid)]
                out.append({**base, "method": "compute-optimal", "setting": {"n": n}, "scaling": "parallel",
                            "extra": {"strategy": best, "level": level, "pilot_score": round(pilot[pid], 6),
                                      "pilot_n": pilot_n, "level_accuracy": acc}})
    return out

