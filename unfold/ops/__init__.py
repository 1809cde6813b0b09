"""Every op of unfold, and the Python operators that build them (``+ - * / ** @``, ``-x``,
indexing, comparisons). Each op lives in one place: shape rule, numpy forward and derivative."""
from __future__ import annotations

from numbers import Number

import numpy as np

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
