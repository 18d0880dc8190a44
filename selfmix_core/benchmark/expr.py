"""A small evaluator of Python expressions for the reading guides' templates (summary.py).

It walks the expression's syntax tree itself instead of calling eval(): only the
expression forms below exist, names resolve in the namespace it is given (nothing from
builtins unless passed in), and no name or attribute starting with "_" can be reached, so
a template can compute with the cells but cannot import, open files or reach into objects'
internals.

    literals, names, attributes, subscripts and slices, calls (positional, keyword, *args),
    arithmetic, comparisons, and / or / not, x if c else y, tuples / lists / sets / dicts,
    list / set / dict comprehensions and generator expressions, lambda (positional
    parameters), f-strings
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable

_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


class ExpressionError(ValueError):
    """An expression the evaluator does not allow or cannot evaluate."""


class _Scope:
    def __init__(self, names: dict[str, Any], parent: "_Scope | None" = None):
        self.names, self.parent = names, parent

    def get(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        raise ExpressionError(f"name {name!r} is not defined")


def evaluate(source: str, names: dict[str, Any]) -> Any:
    """The value of the expression `source` with `names` in scope."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not an expression: {exc.msg}") from None
    return _eval(tree.body, _Scope(names))


def _bind(target: ast.expr, value: Any, into: dict[str, Any]) -> None:
    if isinstance(target, ast.Name):
        _public(target.id)
        into[target.id] = value
    elif isinstance(target, (ast.Tuple, ast.List)):
        values = list(value)
        if len(values) != len(target.elts):
            raise ExpressionError(f"cannot unpack {len(values)} values into {len(target.elts)} names")
        for t, v in zip(target.elts, values):
            _bind(t, v, into)
    else:
        raise ExpressionError(f"cannot assign to {type(target).__name__}")


def _public(name: str) -> str:
    if name.startswith("_"):
        raise ExpressionError(f"names starting with '_' are not reachable: {name!r}")
    return name


def _comprehension(node, scope: _Scope) -> list:
    """[(element scope), ...] for every combination the generators and their ifs yield."""
    out: list[_Scope] = []

    def walk(i: int, outer: _Scope) -> None:
        if i == len(node.generators):
            out.append(outer)
            return
        gen = node.generators[i]
        if gen.is_async:
            raise ExpressionError("async comprehensions are not supported")
        for item in _eval(gen.iter, outer):
            inner = _Scope({}, outer)
            _bind(gen.target, item, inner.names)
            if all(_eval(cond, inner) for cond in gen.ifs):
                walk(i + 1, inner)

    walk(0, scope)
    return out


def _eval(node: ast.AST, scope: _Scope) -> Any:  # noqa: C901 - one branch per expression form
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scope.get(_public(node.id))
    if isinstance(node, ast.Attribute):
        return getattr(_eval(node.value, scope), _public(node.attr))
    if isinstance(node, ast.Subscript):
        return _eval(node.value, scope)[_eval(node.slice, scope)]
    if isinstance(node, ast.Slice):
        return slice(*(None if part is None else _eval(part, scope) for part in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Call):
        args: list[Any] = []
        for a in node.args:
            args += list(_eval(a.value, scope)) if isinstance(a, ast.Starred) else [_eval(a, scope)]
        kwargs = {}
        for k in node.keywords:
            if k.arg is None:
                raise ExpressionError("**kwargs is not supported")
            kwargs[k.arg] = _eval(k.value, scope)
        return _eval(node.func, scope)(*args, **kwargs)
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        return _BIN[type(node.op)](_eval(node.left, scope), _eval(node.right, scope))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, scope))
    if isinstance(node, ast.BoolOp):
        value: Any = None
        for v in node.values:
            value = _eval(v, scope)
            if (isinstance(node.op, ast.And) and not value) or (isinstance(node.op, ast.Or) and value):
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, scope)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, scope)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body, scope) if _eval(node.test, scope) else _eval(node.orelse, scope)
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, scope) for e in node.elts)
    if isinstance(node, ast.List):
        return [_eval(e, scope) for e in node.elts]
    if isinstance(node, ast.Set):
        return {_eval(e, scope) for e in node.elts}
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ExpressionError("**mapping in a dict is not supported")
        return {_eval(k, scope): _eval(v, scope) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):  # generators are evaluated eagerly
        return [_eval(node.elt, s) for s in _comprehension(node, scope)]
    if isinstance(node, ast.SetComp):
        return {_eval(node.elt, s) for s in _comprehension(node, scope)}
    if isinstance(node, ast.DictComp):
        return {_eval(node.key, s): _eval(node.value, s) for s in _comprehension(node, scope)}
    if isinstance(node, ast.Lambda):
        a = node.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            raise ExpressionError("lambda takes plain positional parameters only")
        params = [_public(p.arg) for p in a.args]

        def function(*values):
            if len(values) != len(params):
                raise ExpressionError(f"lambda takes {len(params)} arguments, got {len(values)}")
            return _eval(node.body, _Scope(dict(zip(params, values)), scope))

        return function
    if isinstance(node, ast.JoinedStr):
        return "".join(_eval(v, scope) if not isinstance(v, ast.Constant) else v.value for v in node.values)
    if isinstance(node, ast.FormattedValue):
        value = _eval(node.value, scope)
        if node.conversion != -1:
            value = {115: str, 114: repr, 97: ascii}[node.conversion](value)
        spec = _eval(node.format_spec, scope) if node.format_spec is not None else ""
        return format(value, spec)
    raise ExpressionError(f"{type(node).__name__} is not allowed in a template expression")
