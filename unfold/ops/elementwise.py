"""Element-by-element ops with numpy broadcasting. Each states its derivative in its ``vjp``:
``g`` is ∂L/∂(output); the engine sums each returned term back to its operand's shape."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, UnfoldValueError, describe
from ..graph import Node, apply, derived
from .base import (CONSTANT, Elementwise, Identity, broadcast_shapes, check_dtype,
                   common_float_dtype, lift, lift_all, terms)


class Unary(Elementwise):
    def __init__(self, name, fn, vjp):
        self.name, self._fn, self._vjp = name, fn, vjp

    def kernel(self, node, flags):
        return self._fn

    def forward(self, node, x):
        return self._fn(x)

    def vjp(self, node, g):
        return (self._vjp(node, node.inputs[0], g),)


def _sigmoid(x):
    # exp of a non-positive number only: no overflow warning for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


NEG = Unary("neg", np.negative, lambda y, x, g: -g)
EXP = Unary("exp", np.exp, lambda y, x, g: g * y)
LOG = Unary("log", np.log, lambda y, x, g: g / x)
TANH = Unary("tanh", np.tanh, lambda y, x, g: _through(TANH_DERIV, g, y))
SIGMOID = Unary("sigmoid", _sigmoid, lambda y, x, g: _through(SIGMOID_DERIV, g, y))
SQRT = Unary("sqrt", np.sqrt, lambda y, x, g: g / (2 * y))
RELU = Unary("relu", lambda x: np.maximum(x, 0), lambda y, x, g: g * cast(x > 0, g.dtype))
ABS = Unary("abs", np.abs, lambda y, x, g: g * sign(x))
SIGN = Unary("sign", np.sign, lambda y, x, g: None)
def _softplus(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):    # logaddexp alone warns of a NaN it is given
        return np.logaddexp(x.dtype.type(0), x)


SOFTPLUS = Unary("softplus", _softplus,
                 lambda y, x, g: g * sigmoid(x))
LOG1P = Unary("log1p", np.log1p, lambda y, x, g: g / (1 + x))
EXPM1 = Unary("expm1", np.expm1, lambda y, x, g: g * (y + 1))
SIN = Unary("sin", np.sin, lambda y, x, g: g * cos(x))
COS = Unary("cos", np.cos, lambda y, x, g: -(g * sin(x)))


def neg(x: Node) -> Node:
    """−x"""
    return apply(NEG, lift(x))


def exp(x: Node) -> Node:
    """eˣ; d/dx = eˣ"""
    return apply(EXP, lift(x))


def log(x: Node) -> Node:
    """ln x; d/dx = 1/x"""
    return apply(LOG, lift(x))


def tanh(x: Node) -> Node:
    """tanh x; d/dx = 1 − tanh² x (the book's diag(1 − h²))"""
    return apply(TANH, lift(x))


def sigmoid(x: Node) -> Node:
    """σ(x) = 1/(1 + e⁻ˣ), computed without overflow; d/dx = σ(1 − σ)"""
    return apply(SIGMOID, lift(x))


def sqrt(x: Node) -> Node:
    """√x; d/dx = 1/(2√x)"""
    return apply(SQRT, lift(x))


def relu(x: Node) -> Node:
    """max(x, 0); d/dx = [x > 0]"""
    return apply(RELU, lift(x))


def abs(x: Node) -> Node:  # noqa: A001 - numpy's name
    """|x|; d/dx = sign x"""
    return apply(ABS, lift(x))


def sign(x: Node) -> Node:
    """sign x (zero derivative)"""
    return apply(SIGN, lift(x))


def softplus(x: Node) -> Node:
    """ζ(x) = log(1 + eˣ), computed as ``logaddexp(0, x)``: finite and exact for any |x|;
    d/dx = σ(x)"""
    return apply(SOFTPLUS, lift(x))


def log1p(x: Node) -> Node:
    """ln(1 + x), accurate for small |x|; d/dx = 1/(1 + x)"""
    return apply(LOG1P, lift(x))


def expm1(x: Node) -> Node:
    """eˣ − 1, accurate for small |x|; d/dx = eˣ"""
    return apply(EXPM1, lift(x))


def sin(x: Node) -> Node:
    """sin x; d/dx = cos x"""
    return apply(SIN, lift(x))


def cos(x: Node) -> Node:
    """cos x; d/dx = −sin x"""
    return apply(COS, lift(x))


class Binary(Elementwise):
    def __init__(self, name, fn, vjp):
        self.name, self._fn, self._vjp = name, fn, vjp

    def kernel(self, node, flags):
        # numpy's broadcasting is the per-example rule unless a batched operand has lower rank
        if True not in flags:
            return self._fn
        nd = len(node.shape)
        if all(not f or len(x.shape) == nd for x, f in zip(node.inputs, flags)):
            return self._fn
        return None

    def forward(self, node, a, b):
        return self._fn(a, b)

    def vjp(self, node, g):
        a, b = node.inputs
        return self._vjp(node, a, b, g)


def _pow_vjp(y, a, b, g):
    exponent = b.attrs["value"] if b.op is CONSTANT else None
    # ∂/∂a = b aᵇ⁻¹, with aᵇ⁻¹ read as a⁰ where b = 0: then 0 (a⁰ = 1 is constant), also at
    # a = 0 where 0 · 0⁻¹ would be nan
    if exponent is None:
        ga = g * (b * power(a, where(b == 0, 0, b - 1)))
    elif exponent.any():
        lowered = np.where(exponent == 0, 0, exponent - 1).astype(exponent.dtype)
        ga = g * (b * power(a, lowered.item() if lowered.ndim == 0 else lowered))
    else:
        ga = None                               # x ** 0: no gradient at all
    if exponent is not None:
        return ga, None                         # a constant exponent needs no gradient
    # ∂/∂b = aᵇ ln a for a > 0; 0 at a = 0 (0ᵇ is constant for b > 0); for a < 0 the real power
    # exists only at integers b and has no derivative in b (nan, as ln a)
    zero = a == 0
    return ga, where(zero, 0, g * y * log(where(zero, 1, a)))


class Power(Binary):
    """``aᵇ``. A negative base has a real power only for an integer exponent: another exponent
    is refused when evaluated (numpy would give nan), naming the node and the value."""

    def __init__(self):
        super().__init__("pow", np.power, _pow_vjp)

    def kernel(self, node, flags):
        return super().kernel(node, flags) if node.attrs.get("integral") else None

    def forward(self, node, a, b):
        if not node.attrs.get("integral"):
            negative = a < 0
            if negative.any():
                bad = negative & (b != np.trunc(b))
                if bad.any():
                    base, exponent = (np.broadcast_to(v, bad.shape)[bad].ravel()[0].item()
                                      for v in (a, b))
                    x, p = (repr(n.attrs["value"].item()) if n.op is CONSTANT and n.size == 1
                            else repr(n.label) for n in node.inputs)
                    raise UnfoldValueError(
                        f"pow: {describe(node)} = {x} ** {p} raises the negative base "
                        f"{base} to the non-integer power {exponent}, which has no real value; "
                        f"use an integer exponent, or abs(x) ** p (sign(x) * abs(x) ** p for an "
                        f"odd root)")
        return np.power(a, b)


ADD = Binary("add", np.add, lambda y, a, b, g: (g, g))
SUB = Binary("sub", np.subtract, lambda y, a, b, g: (g, -g))
MUL = Binary("mul", np.multiply, lambda y, a, b, g: (g * b, g * a))
DIV = Binary("div", np.divide, lambda y, a, b, g: (g / b, -g * y / b))
POW = Power()
MAXIMUM = Binary("maximum", np.maximum, lambda y, a, b, g: (
    g * cast(a >= b, g.dtype), g * cast(a < b, g.dtype)))
MINIMUM = Binary("minimum", np.minimum, lambda y, a, b, g: (
    g * cast(a <= b, g.dtype), g * cast(a > b, g.dtype)))


# the derivatives of tanh and σ as functions of their outputs, tanh′ = 1 − y² and σ′ = y(1 − y):
# one node each (an unfolded recurrence has one per step), computed as the two element-wise ops
# they replace; read by nothing but ``g ⊙ ·``, they run outside a recurrent loop
TANH_DERIV = Unary("tanh_deriv", lambda y: 1 - y * y, lambda d, y, g: -2.0 * (g * y))
SIGMOID_DERIV = Unary("sigmoid_deriv", lambda y: y * (1 - y), lambda d, y, g: g * (1 - 2.0 * y))


def _through(op, g: Node, y: Node) -> Node:
    """``g ⊙ op(y)``: a derivative through the output ``y``; built directly when ``g`` has
    ``y``'s shape and dtype (as it has but on a broadcast)."""
    d = derived(op, (y,), y)
    if g.shape is y.shape and g._meta.dtype is y._meta.dtype:
        return derived(MUL, (g, d), y)
    return g * d


def tanh_deriv(y) -> Node:
    """``1 − y²``: the derivative of ``tanh`` where it is ``y`` (the book's diag(1 − h²))."""
    return apply(TANH_DERIV, lift(y))


def sigmoid_deriv(y) -> Node:
    """``y(1 − y)``: the derivative of ``σ`` where it is ``y``."""
    return apply(SIGMOID_DERIV, lift(y))


def _binary(op, a, b) -> Node:
    if a.__class__ is not Node or b.__class__ is not Node:
        a, b = lift_all((a, b))
    return apply(op, a, b)


def add(a, b) -> Node:
    return _binary(ADD, a, b)


def subtract(a, b) -> Node:
    return _binary(SUB, a, b)


def multiply(a, b) -> Node:
    return _binary(MUL, a, b)


def divide(a, b) -> Node:
    return _binary(DIV, a, b)


def power(a, b) -> Node:
    """aᵇ; ∂/∂a = b aᵇ⁻¹ (0 where b = 0), ∂/∂b = aᵇ ln a. A negative base needs an integer
    exponent (anything else is refused when evaluated)."""
    integral = type(b) is int or type(b) is float and b.is_integer()
    if a.__class__ is not Node or b.__class__ is not Node:
        a, b = lift_all((a, b))
    if not integral and b.op is CONSTANT:
        value = b.attrs["value"]
        integral = bool(np.all(value == np.trunc(value)))
    return apply(POW, a, b, integral=True) if integral else apply(POW, a, b)


def maximum(a, b) -> Node:
    """Element-wise maximum; the gradient goes to the larger operand (to ``a`` on ties)."""
    return _binary(MAXIMUM, a, b)


def minimum(a, b) -> Node:
    """Element-wise minimum; the gradient goes to the smaller operand (to ``a`` on ties)."""
    return _binary(MINIMUM, a, b)


def clip(x, lower=None, upper=None) -> Node:
    """``x`` limited to [lower, upper] (either bound may be None), as ``numpy.clip``: written
    ``minimum(maximum(x, lower), upper)``, so the gradient is 1 inside and at the bounds, 0
    outside (as torch.clamp), and reaches bounds that are nodes."""
    if lower is None and upper is None:
        raise UnfoldValueError("clip needs a lower or an upper bound (or both), got neither")
    x = lift(x)
    bounds = [lift(v, (x,)) for v in (lower, upper) if v is not None]
    for bound in bounds:
        if bound.op is CONSTANT and np.isnan(bound.attrs["value"]).any():
            raise UnfoldValueError(f"clip: a bound of {describe(x)} is nan; give numbers")
    if len(bounds) == 2 and all(v.op is CONSTANT for v in bounds) and \
            np.any(bounds[0].attrs["value"] > bounds[1].attrs["value"]):
        raise UnfoldValueError(f"clip: the lower bound {lower!r} of {describe(x)} is above the "
                               f"upper bound {upper!r}")
    if lower is not None:
        x = maximum(x, bounds[0])
    if upper is not None:
        x = minimum(x, bounds[-1])
    return x


class AddN(Elementwise):
    """x₁ + … + xₙ in one op — how gradients accumulate, e.g. ∇W = Σₜ ∇W(t)."""

    name = "add_n"

    def forward(self, node, *xs):
        out = xs[0] + xs[1]
        for x in xs[2:]:
            # in place only when ``x`` fits into ``out``: on a batch, a term shared by every
            # example (unbatched) may come before a batched one
            if x.ndim <= out.ndim and np.broadcast_shapes(out.shape, x.shape) == out.shape:
                out += x
            else:
                out = out + x
        return out

    def vjp(self, node, g):
        return (g,) * len(node.inputs)


ADD_N = AddN()


def add_n(xs) -> Node:
    """x₁ + … + xₙ for a non-empty sequence of nodes."""
    xs = terms("add_n", xs)
    if len(xs) == 1:
        return xs[0]
    return apply(ADD_N, *xs)


# --- non-differentiable element-wise ops ---------------------------------------------------------

class Compare(Elementwise):
    differentiable = False

    def __init__(self, name, fn):
        self.name, self._fn = name, fn

    def infer(self, inputs, attrs):
        if len({n.dtype for n in inputs}) > 1:
            raise DTypeError(f"{self.name}: operands have different dtypes "
                             f"({', '.join(describe(n) for n in inputs)})")
        return broadcast_shapes(self.name, inputs), np.dtype(bool)

    def forward(self, node, a, b):
        return self._fn(a, b)

    def vjp(self, node, g):
        return (None, None)


GREATER, GREATER_EQUAL = Compare("greater", np.greater), Compare("greater_equal", np.greater_equal)
LESS, LESS_EQUAL = Compare("less", np.less), Compare("less_equal", np.less_equal)
EQUAL, NOT_EQUAL = Compare("equal", np.equal), Compare("not_equal", np.not_equal)


def greater(a, b) -> Node:
    return _binary(GREATER, a, b)


def greater_equal(a, b) -> Node:
    return _binary(GREATER_EQUAL, a, b)


def less(a, b) -> Node:
    return _binary(LESS, a, b)


def less_equal(a, b) -> Node:
    return _binary(LESS_EQUAL, a, b)


def equal(a, b) -> Node:
    return _binary(EQUAL, a, b)


def not_equal(a, b) -> Node:
    return _binary(NOT_EQUAL, a, b)


class Where(Elementwise):
    """``where(c, a, b)``: a where c holds, else b; the gradient follows the chosen branch."""

    name = "where"

    def infer(self, inputs, attrs):
        cond, a, b = inputs
        if cond.dtype != np.bool_:
            raise DTypeError(f"where: the condition {describe(cond)} must be boolean; build it "
                             f"with a comparison such as x > 0")
        return broadcast_shapes(self.name, inputs), common_float_dtype(self.name, (a, b))

    def forward(self, node, c, a, b):
        return np.where(c, a, b)

    def vjp(self, node, g):
        c = node.inputs[0]
        zero = lift(0.0, (g,))
        return None, where(c, g, zero), where(c, zero, g)


WHERE = Where()


def where(condition, a, b) -> Node:
    condition, a, b = lift_all((condition, a, b))
    return apply(WHERE, condition, a, b)


class Cast(Elementwise):
    name = "cast"

    def infer(self, inputs, attrs):
        return inputs[0].shape, attrs["dtype"]

    def forward(self, node, x):
        target = node.dtype
        if target.kind == "b" or np.can_cast(x.dtype, target, "safe"):
            return x.astype(target, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):      # refused below, by name
            out = x.astype(target)
        if target.kind in "iu":
            if x.dtype.kind == "f":     # astype truncates toward 0: trunc(x) must be in range
                info = np.iinfo(target)
                with np.errstate(invalid="ignore"):
                    t = np.trunc(x)
                    bad = ~((t >= float(info.min)) & (t < float(info.max) + 1))
            else:
                bad = out != x
        else:                           # a narrower float: finite values must stay finite
            bad = np.isinf(out) & np.isfinite(x)
        if bad.any():
            value = x[bad].ravel()[0].item()
            raise UnfoldValueError(
                f"cast: {describe(node.inputs[0])} holds {value!r}, which {target} cannot "
                f"hold ({'not a number' if value != value else 'out of its range'}); a cast "
                f"that wraps, truncates to garbage or overflows to inf would change the "
                f"value — clip or round it first, or cast to a wider dtype")
        return out

    def vjp(self, node, g):
        x = node.inputs[0]
        return (cast(g, x.dtype) if x.dtype.kind == "f" else None,)


class StopGradient(Identity):
    """The identity, with a zero derivative: gradients do not flow through it."""

    name = "stop_gradient"

    def vjp(self, node, g):
        return (None,)


CAST, STOP_GRADIENT = Cast(), StopGradient()


def cast(x, dtype: Any) -> Node:
    """x converted to ``dtype`` (the gradient is cast back)."""
    x = lift(x)
    dtype = check_dtype(dtype, lambda: f"cast of {x.label!r}")
    if x.dtype == dtype:
        return x
    return apply(CAST, x, dtype=dtype)


def stop_gradient(x: Node) -> Node:
    return apply(STOP_GRADIENT, lift(x))
