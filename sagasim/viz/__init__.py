"""Pictures of a saga: diagrams of its steps, its compiled machine, its state space and its
services (Graphviz, Mermaid), notebook display, and the one-page HTML report.

Diagrams go extract → intermediate form → renderer: :mod:`~sagasim.viz.graph` reads the
compiled machine as graphs, :mod:`~sagasim.viz.places` says where each node of the model sits
(columns, boxes, a map's item copies named back), :mod:`~sagasim.viz.diagram` extracts,
:mod:`~sagasim.viz.render` writes Graphviz and Mermaid. Figures of results live in
:mod:`sagasim.plot`.
"""

from .render import FORMATS, diagram, draw, repr_svg, states_diagram, write

__all__ = ["FORMATS", "diagram", "draw", "repr_svg", "states_diagram", "write"]
