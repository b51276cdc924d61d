"""course_lib.data (see ARCHITECTURE.md)."""
