"""Reports on a run: a text timeline and an HTML space-time diagram around a finding."""

from onceflow.report.diagram import write_html
from onceflow.report.timeline import text_timeline, violating_timeline

__all__ = ["text_timeline", "violating_timeline", "write_html"]
