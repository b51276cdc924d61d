"""course_lib.tsm (see ARCHITECTURE.md)."""
