"""`python -m autograder ...`: the course's maintenance and grading commands."""

import sys

from .authoring.cli import main

sys.exit(main())
