"""Every op of unfold, and the Python operators that build them (``+ - * / ** @``, ``-x``,
indexing, comparisons). Each op lives in one place: shape rule, numpy forward and derivative."""
from __future__ import annotations

from numbers import Number

import numpy as np

from ..errors import UnfoldAttributeError, UnfoldTypeError
from ..graph import Node
from .base import constant, input, is_placeholder, lift, param, sum_like, broadcast_like
from .elementwise import (abs, add, add_n, cast, clip, cos, divide, equal, exp, expm1, greater,
                          greater_equal, less, less_equal, log, log1p, maximum, minimum, multiply,
                          neg, not_equal, power, relu, sigmoid, sign, sin, softplus, sqrt,
                          stop_gradient, subtract, tanh, where)
from .einsum import einsum
from .linalg import matmul, outer
from .nn import cross_entropy, embedding, log_softmax, mse, one_hot, softmax
from .reduce import (argmax, batch_sum, logsumexp, max, mean, min, prod, std, sum, var)
from .shape import concat, getitem, reshape, stack, transpose

def _reflected(fn):
    return lambda self, other: fn(other, self)


for _name, _fn in {"add": add, "sub": subtract, "mul": multiply, "truediv": divide,
                   "pow": power, "matmul": matmul}.items():
    setattr(Node, f"__{_name}__", _fn)
    setattr(Node, f"__r{_name}__", _reflected(_fn))
for _name, _fn in {"gt": greater, "ge": greater_equal, "lt": less, "le": less_equal}.items():
    setattr(Node, f"__{_name}__", _fn)


def _elementwise(fn):
    """``node == other`` as numpy's: a node, for anything an expression takes (nodes, numbers,
    arrays). Other objects (None, a string) are not comparable element-wise: Python's default
    then applies (``node == None`` is False), as for torch tensors."""
    def compare(self, other):
        if not (isinstance(other, (Node, Number, np.ndarray, np.generic, list, tuple))):
            return NotImplemented
        return fn(self, other)
    return compare


Node.__eq__, Node.__ne__ = _elementwise(equal), _elementwise(not_equal)

# numpy's functions on nodes: the ufuncs unfold has run as its ops (``np.exp(x)`` is
# ``unfold.exp(x)``, ``array * x`` is ``multiply(array, x)``); anything else is refused with the
# unfold op to use
_UFUNCS = {np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
           np.power: power, np.matmul: matmul, np.negative: neg, np.absolute: abs, np.exp: exp,
           np.expm1: expm1, np.log: log, np.log1p: log1p, np.sqrt: sqrt, np.tanh: tanh,
           np.sin: sin, np.cos: cos, np.sign: sign, np.maximum: maximum, np.minimum: minimum,
           np.equal: equal, np.not_equal: not_equal, np.less: less, np.less_equal: less_equal,
           np.greater: greater, np.greater_equal: greater_equal}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    fn = _UFUNCS.get(ufunc)
    if fn is None or method != "__call__" or kwargs:
        raise UnfoldTypeError(f"numpy's {ufunc.__name__}{'' if method == '__call__' else '.' + method}"
                              f"{' with ' + ', '.join(kwargs) if kwargs else ''} cannot run on the "
                              f"symbolic node {self.label!r}; {_instead(ufunc.__name__)}")
    return fn(*inputs)


def _array_function(self, func, types, args, kwargs):
    raise UnfoldTypeError(f"numpy.{func.__name__} cannot run on the symbolic node {self.label!r}; "
                          f"{_instead(func.__name__)}")


def _instead(name: str) -> str:
    import unfold
    return (f"use unfold.{name}" if callable(getattr(unfold, name, None)) else
            "use unfold's ops") + ", or unfold.evaluate the node first"


# what else a numpy user types at an array: each is refused by name, with what to use instead
_NO_OPERATOR = {
    "floordiv": ("//", "floor division has no derivative; evaluate first, or use unfold.cast"),
    "mod": ("%", "the remainder has no derivative; evaluate first"),
    "divmod": ("divmod", "floor division has no derivative; evaluate first"),
    "and": ("&", _LOGIC := "unfold has no logical operators: combine boolean nodes as numbers, "
            "e.g. unfold.cast(a, 'float64') * unfold.cast(b, 'float64') > 0 for a and b, "
            "unfold.maximum(…) > 0 for a or b"),
    "or": ("|", _LOGIC), "xor": ("^", _LOGIC),
    "lshift": ("<<", "unfold has no bit shifts"), "rshift": (">>", "unfold has no bit shifts")}


def _refuse(symbol: str, hint: str):
    def refused(self, *other):
        raise UnfoldTypeError(f"{symbol} on node {self.label!r}: {hint}")
    return refused


for _name, (_symbol, _hint) in _NO_OPERATOR.items():
    setattr(Node, f"__{_name}__", _refuse(_symbol, _hint))
    setattr(Node, f"__r{_name}__", _refuse(_symbol, _hint))
Node.__invert__ = _refuse("~", _LOGIC)
Node.__setitem__ = _refuse("assigning to an element", "nodes are immutable; build the new value, "
                           "e.g. unfold.where(condition, new, x) or unfold.concat")
Node.__delitem__ = _refuse("deleting an element", "nodes are immutable; index what to keep, "
                           "e.g. x[1:]")
# immutable: a copy is the node itself; a graph is rebuilt by code, never pickled
Node.__copy__ = lambda self: self
Node.__deepcopy__ = lambda self, memo: self
Node.__reduce_ex__ = _refuse("pickling", "a graph is not pickled: save the parameters "
                             "(unfold.train.save_params / save_model) and rebuild the graph with "
                             "its code (unfold.models.rebuild for a builder's model)")


def _format(self, spec: str) -> str:
    if spec:
        raise UnfoldTypeError(f"format {spec!r} of node {self.label!r}: a node has no value until "
                              f"evaluated; format unfold.evaluate([node], feed)[0]")
    return str(self)


_INSTEAD = {"astype": "unfold.cast(x, dtype)", "flatten": "unfold.reshape(x, (-1,))",
            "ravel": "unfold.reshape(x, (-1,))", "squeeze": "unfold.reshape(x, shape)",
            "expand_dims": "x[None] or unfold.reshape", "backward": "unfold.grad(y, wrt)",
            "grad": "unfold.grad(y, wrt)"}
_VALUE = ("numpy", "item", "tolist", "value", "data", "tobytes", "copy")


def _getattr(self, name: str):
    if name.startswith("__"):           # Python's own protocols: plainly absent
        raise AttributeError(name)
    import unfold
    if name in _INSTEAD:
        hint = f"use {_INSTEAD[name]}"
    elif name in _VALUE:
        hint = "a node has no value until evaluated: unfold.evaluate([x], feed)"
    elif callable(getattr(unfold, name, None)):
        hint = f"use unfold.{name}(x, …)"
    else:
        hint = ("its fields are op, inputs, shape, dtype, name, step, source, adjoint; "
                "unfold's ops are functions of the unfold module")
    raise UnfoldAttributeError(f"node {self.label!r} has no attribute {name!r}; {hint}")


Node.__format__ = _format
Node.__getattr__ = _getattr
Node.__array_ufunc__ = _array_ufunc
Node.__array_function__ = _array_function
Node.__neg__ = neg
Node.__pos__ = lambda self: self
Node.__abs__ = abs
Node.__getitem__ = getitem
Node.T = property(transpose)
Node.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)
Node.sum = sum
Node.mean = mean
Node.max = max
Node.min = min
