"""``python -m disttorch.serve CHECKPOINT --model module:factory ...`` (same as ``disttorch serve``)."""
import sys

from .cli import main

sys.exit(main())
