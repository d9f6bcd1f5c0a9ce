"""Objectives: small arithmetic expressions over a report's figures, checked once and evaluated per result.

`1 - models.uld.knowmem_forget / models.target.knowmem_forget` reads two figures of report.json by their
dotted paths. Only numbers, figures, + - * / **, unary minus and abs/min/max are allowed: an objective is
data from a YAML file, never code, so it is interpreted here rather than handed to eval().
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable, Mapping, Optional

Path = tuple[str, ...]

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_CALLS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}
_ARITY: dict[str, tuple[int, Optional[int]]] = {"abs": (1, 1), "min": (2, None), "max": (2, None)}  # fewest, most


class ExpressionError(ValueError):
    pass


def _path_of(node: ast.AST) -> Optional[Path]:
    """`models.uld.knowmem_forget` or `models["grad-ascent"].x` as a path; None if the node is no path."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        base = _path_of(node.value)
        return base + (node.attr,) if base else None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, (str, int)):
        base = _path_of(node.value)
        return base + (str(node.slice.value),) if base else None
    return None


class Expression:
    """A parsed objective; `paths` are the figures it reads, `value(report)` computes it (None when a figure
    is missing or not a finite number, or the arithmetic is undefined, as with a division by zero)."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self._tree = ast.parse(text, mode="eval").body
        except SyntaxError as e:
            raise ExpressionError(f"{text!r} does not parse: {e.msg}") from None
        self.paths: list[Path] = []
        self._check(self._tree)

    def _check(self, node: ast.AST) -> None:
        path = _path_of(node)
        if path is not None:
            if path[0] in _CALLS and len(path) == 1:
                raise ExpressionError(f"{path[0]} is a function; call it: {path[0]}(...)")
            self.paths.append(path)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            pass
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS \
                and not node.keywords:
            least, most = _ARITY[node.func.id]
            if not least <= len(node.args) <= (most or len(node.args)):
                told = "exactly one argument" if most == 1 else f"at least {least} arguments"
                raise ExpressionError(f"{ast.unparse(node)!r}: {node.func.id} takes {told}")
            for arg in node.args:
                self._check(arg)
        else:
            shown = ast.unparse(node)
            raise ExpressionError(f"{shown!r} is not allowed in an objective; use numbers, report figures "
                                  f"(dotted paths), + - * / **, and abs/min/max")

    def value(self, report: Mapping[str, Any]) -> Optional[float]:
        try:
            result = self._eval(self._tree, report)
        except (ZeroDivisionError, OverflowError, TypeError, _Missing):
            return None  # TypeError: arithmetic Python refuses, never a reason to fail a trial that ran
        return result if math.isfinite(result) else None

    def _eval(self, node: ast.AST, report: Mapping[str, Any]) -> float:
        path = _path_of(node)
        if path is not None:
            return figure(report, path)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.BinOp):
            result = _BINARY[type(node.op)](self._eval(node.left, report), self._eval(node.right, report))
            if isinstance(result, complex):  # a negative number to a fractional power: no real value
                raise _Missing(ast.unparse(node))
            return result
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, report))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(_CALLS[node.func.id](*(self._eval(a, report) for a in node.args)))


class _Missing(Exception):
    pass


def figure(report: Mapping[str, Any], path: Path) -> float:
    """The number at `path` in a report; _Missing when it is absent, null, NaN or not a number."""
    node: Any = report
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _Missing(".".join(path))
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise _Missing(".".join(path))
    return float(node)


def dotted(path: Path) -> str:
    return ".".join(path)
