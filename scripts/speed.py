"""Speed benchmark of Guided Feature Inversion; the same as ``captum-gfi bench``.

Quick run:  python scripts/speed.py --models resnet18 --batch-sizes 1 --repeats 1
See docs/performance.md for the full run and what each row means.
"""

import sys

from captum_gfi._malloc import keep_freed_memory
from captum_gfi.bench import main

if __name__ == "__main__":
    keep_freed_memory()  # as ``captum-gfi bench`` does: timings comparable with the command's
    sys.exit(main())
