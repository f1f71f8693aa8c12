"""The authoring side of the autograder: declare exercises, build reference sets from the
solutions, generate notebooks, prove everything is in sync. Students' kernels and the sealed
grader never import this package (nor `solutions`)."""
