"""tests/projects holds project trees that tests/e2e/test_projects.py copies and builds.

Their own tests and scripts are part of their shape, not of torchslim's suite.
"""

collect_ignore_glob = ["*"]
