"""HW2 grading: collect, autograde, trusted scoring, feedback, export (python -m grading ...)."""
