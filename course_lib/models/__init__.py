"""course_lib.models (see ARCHITECTURE.md)."""
