"""nbgrader configuration of the course (copied into each TA's grading folder by `python -m grading collect` / `all`, through
``grading.course.init_course``).

The course directory root is the folder this file sits in; `source/hw2/` holds the
instructor version of HW2 (solutions and hidden tests), from which nbgrader generates the
student release (`release/hw2/`, committed as `hw2/` at the top of the repository).
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "music-synthesis"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")

# what nbgrader copies around: not the loops (the trusted scorer reads them from submitted/,
# and copying 200 WAVs per student into autograded/ and feedback/ only costs disk)
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".*", "loops", "regenerated"]
c.CourseDirectory.max_file_size = 50_000  # kB: bigger files are not copied into autograded/

# the stub students see in place of a solution
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# autograding: every cell gets at most this long; a stuck cell is interrupted, not waited for
c.Execute.timeout = int(os.environ.get("HW2_CELL_TIMEOUT", "120"))
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True
c.Execute.kernel_name = "python3"

# feedback without the hidden tests' source
c.ClearHiddenTests.begin_test_delimeter = "BEGIN HIDDEN TESTS"
c.ClearHiddenTests.end_test_delimeter = "END HIDDEN TESTS"
