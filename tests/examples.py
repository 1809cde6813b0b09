"""What several test files share: how many hypothesis examples a property runs, and small
hand-written models.

A property that costs more than most runs fewer examples than the profile's ``max_examples`` (25
by default); ``scaled(n)`` keeps that ratio under every profile, so ``HYPOTHESIS_PROFILE=heavy``
(300) runs 12× more of each instead of leaving a literal ``max_examples=n`` at n.
"""
from __future__ import annotations

from hypothesis import settings

import unfold as uf

DEFAULT_EXAMPLES = 25                       # the default profile's max_examples (tests/conftest.py)


def scaled(n: int) -> int:
    """``n`` examples under the default profile, proportionally more or fewer under another."""
    return max(1, n * settings().max_examples // DEFAULT_EXAMPLES)


def encoder_decoder(m: int, n: int, k: int) -> tuple[uf.Recurrence, uf.Recurrence]:
    """Fig. 10.12 written by hand: the encoder h(t) = tanh(W_e h(t−1) + U_e x(t)) and the decoder
    s(t) = tanh(W_d s(t−1) + R C), s(0) = tanh(C), with L(t) = CE(V s(t), y(t)); C is the
    decoder's context, to bind to the encoder's final h (``dec.unfold(n_y, bind={"C": …})``)."""
    enc = uf.Recurrence("encoder")
    x = enc.sequence("x", (m,))
    h = enc.state("h", (n,))
    enc.update(h, uf.tanh(enc.param("W_e", (n, n)) @ h + enc.param("U_e", (n, m)) @ x))
    dec = uf.Recurrence("decoder")
    C = dec.context("C", (n,))
    y = dec.target("y", ())
    s = dec.state("s", (n,), init=uf.tanh(C))               # the context starts the decoder …
    s_t = dec.update(s, uf.tanh(dec.param("W_d", (n, n)) @ s + dec.param("R", (n, n)) @ C))
    dec.loss("L", uf.cross_entropy(dec.param("V", (k, n)) @ s_t, y))     # … and feeds every step
    return enc, dec
