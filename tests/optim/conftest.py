import os
import sys

# The optimizer tests share optim_helpers.py (data, runs, resume and chunked-path checks).
sys.path.insert(0, os.path.dirname(__file__))
