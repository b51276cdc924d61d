"""course_lib.metrics (see ARCHITECTURE.md)."""
