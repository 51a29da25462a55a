#!/usr/bin/env bash
# The README's end-to-end curation run: a pool of synthetic tasks, templated word problems (a local JSONL written
# here) and, when an offline MATH-500 copy is at hand, MATH-500 itself as a local file (decontamination removes it),
# through every stage on the embedded model into runs/curate-demo.
#     bash scripts/curate_demo.sh            (about 10 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OUT=${OUT:-runs/curate-demo}
mkdir -p "$OUT"
[ -f "$OUT/word_problems.jsonl" ] || "$PY" - "$OUT/word_problems.jsonl" <<'PY'
import json, random, sys
rng = random.Random(0)
names, things = ["Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo"], ["apples", "stamps", "marbles", "books", "shells"]
rows = []
for i in range(300):
    n, t, a, b, c = rng.choice(names), rng.choice(things), rng.randint(3, 40), rng.randint(2, 25), rng.randint(2, 6)
    kind = i % 3
    if kind == 0:
        q, ans = f"{n} has {a} {t} and gets {b} more. How many {t} does {n} have now?", a + b
    elif kind == 1:
        q, ans = f"{n} has {a + b} {t} and gives away {b}. How many {t} are left?", a
    else:
        q, ans = f"{n} buys {c} boxes with {a} {t} in each box. How many {t} does {n} buy in all?", a * c
    rows.append({"question": q, "answer": str(ans), "source": "word-problems"})
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    fh.writelines(json.dumps(r) + "\n" for r in rows)
PY
SOURCES=(--source "$OUT/word_problems.jsonl fields=question=question,answer=answer")
for data in "${TTSCALE_DATA:-}" ../shared/data; do
  if [ -n "$data" ] && [ -f "$data/math500.jsonl" ]; then
    SOURCES+=(--source "$data/math500.jsonl fields=question=problem,answer=answer,solution=solution")
    break
  fi
done
"$PY" -m engine.cli curate --config docs/curate_demo.yaml --out "$OUT" "${SOURCES[@]}" "$@"
