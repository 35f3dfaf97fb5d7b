"""Cost and reliability reports from the read models: figures, charts (PNG) and one HTML file.

``gather`` runs the report's SQL through any query function, ``charts`` draws PNGs with
matplotlib, and ``render_html`` writes a self-contained page with the charts embedded.
"""

from .charts import Chart, draw_charts
from .data import PERIODS, Report, Section, gather
from .html import render_html

__all__ = ["PERIODS", "Chart", "Report", "Section", "draw_charts", "gather", "render_html"]
