"""unfold — a graph-based automatic-differentiation engine for recurrent networks.

Write a recurrence ``h(t) = f(h(t-1), x(t); θ)`` once, symbolically; unfold it into an explicit
τ-step graph with a dummy copy ``W(t)`` of every shared weight per step; differentiate it in reverse
mode (back-propagation through time). Chapter 10 of Goodfellow, Bengio & Courville, made
executable.
"""
from __future__ import annotations

from .errors import (DTypeError, FeedError, GradcheckError, GradError, RecurrenceError, ShapeError,
                     UnfoldAttributeError, UnfoldError, UnfoldIndexError, UnfoldKeyError,
                     UnfoldTypeError, UnfoldValueError)
from .graph import Node, Op
from .ops import (abs, add, add_n, argmax, batch_sum, cast, clip, concat, constant, cos,
                  cross_entropy, divide, einsum, embedding, equal, exp, expm1, getitem, greater,
                  greater_equal, input, less, less_equal, log, log1p, log_softmax, logsumexp,
                  matmul, max, maximum, mean, min, minimum, mse, multiply, neg, not_equal,
                  one_hot, outer, param, power, prod, relu, reshape, sigmoid, sign, sin, softmax,
                  softplus, sqrt, stack, std, stop_gradient, subtract, sum, tanh, transpose, var,
                  where)
from .ops.base import named
from .grad import grad
from .evaluate import Program, clear_cache, compile, evaluate
from .recurrence import Recurrence, Unfolded
from . import dynamics, generate, models, train  # chapter 10's networks, and how to train them

__version__ = "0.1.0"
