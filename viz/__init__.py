"""viz — draw unfold's graphs the way chapter 10 of Goodfellow, Bengio & Courville's *Deep
Learning* does.

Book view of any ``unfold.Recurrence`` (named variables as circles, parameters on the edges,
delays as a black square, time left to right):

    viz.folded(rec)                          # the folded graph (Fig. 10.2, left)
    viz.unfolded(rec, steps=4)               # steps 1…4
    viz.unfolded(rec)                        # the window h(…), h(t−1), h(t), h(t+1), h(…)
    viz.unfolding(rec)                       # folded, an "Unfold" arrow, unfolded (Fig. 10.2)
    viz.unfolded(rec, steps=8, gradients=g)  # coloured by log10 ‖∇‖ (viz.overlay)
    viz.cell(rec)                            # one step with its gating × nodes (Fig. 10.16)

Op view of any graph, gradient graphs included: ``viz.graph(nodes, backward=…)``. The book's
figures from live models: ``viz.figure("10.3")``; all of them: ``python -m viz.gallery DIR``.
Every drawing is a ``graphviz.Digraph`` (``.source`` is its DOT text, Jupyter displays it); see
``viz.output`` for SVG, PNG, PDF and files.
"""
from .figures import FIGURES, figure
from .ops_view import CollapsedStepsWarning, graph
from .output import (DotFailedError, DotNotFoundError, Drawing, SaveError, layout, pdf, png,
                     positions, save, source, svg)
from .overlay import gradient_norms, shared_scale
from .views import ElidedStepsWarning, folded, side_by_side, unfolded, unfolding
from .graphical import graphical_model
from .joined import encoder_decoder
from .cell_view import cell
from .memory import memory
from .tree import tree

__all__ = ["folded", "unfolded", "unfolding", "side_by_side", "cell", "graphical_model",
           "encoder_decoder", "tree", "memory", "graph", "figure", "FIGURES",
           "gradient_norms", "shared_scale", "save", "source", "svg", "png", "pdf", "layout",
           "positions", "Drawing", "DotNotFoundError", "DotFailedError", "SaveError",
           "ElidedStepsWarning", "CollapsedStepsWarning"]
