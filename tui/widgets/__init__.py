"""Dashboard widgets, one module per panel."""

from tui.widgets.coverage_heatmap import CoverageHeatmap, HeatmapLegend

__all__ = ["CoverageHeatmap", "HeatmapLegend"]
