"""Example step verifiers for ``VerifierPRM`` (``--prm engine.search.verifiers:arithmetic --prm-protocol verifier``).

A verifier is ``fn(question, steps) -> one float or bool per step``; it checks what can be checked exactly and
costs no model tokens.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

# `expr = number` where expr is plain arithmetic; the look-behind keeps `4d = 300` or `x=5` out.
_EQUATION = re.compile(r"(?<![\w.^])([-+*/() \d.]*\d[-+*/() \d.]*?)\s*=\s*(-?\d+(?:\.\d+)?)(?![\w.^])")
_TIMES = re.compile(r"\\cdot|\\times|×|·")


def _value(node: ast.AST) -> Fraction:
    """Exact value of a +, -, *, / expression over integer and decimal literals; ValueError for anything else."""
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _value(node.operand)
        return v if isinstance(node.op, ast.UAdd) else -v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        return a / b  # ZeroDivisionError: the equation is false
    raise ValueError(f"not plain arithmetic: {ast.dump(node)[:40]}")


def arithmetic_equations(step: str) -> list[tuple[str, str, bool]]:
    """Each plain-arithmetic equation ``expr = number`` in ``step`` with whether it holds exactly (``\\cdot``, ``\\times`` are ``*``)."""
    text = _TIMES.sub("*", step.replace("$", " "))
    found = []
    for m in _EQUATION.finditer(text):
        lhs, rhs = m.group(1).strip(), m.group(2)
        try:
            ok = _value(ast.parse(lhs, mode="eval")) == Fraction(rhs)
        except ZeroDivisionError:
            ok = False
        except (SyntaxError, ValueError, RecursionError):
            continue  # not an expression we can check (e.g. an unbalanced parenthesis from the surrounding text)
        found.append((lhs, rhs, ok))
    return found


def arithmetic(question: str, steps: list[str]) -> list[float]:
    """1.0 for a step whose arithmetic equations all hold (or that has none to check), 0.0 for a step with a false one."""
    return [0.0 if any(not ok for _, _, ok in arithmetic_equations(step)) else 1.0 for step in steps]
