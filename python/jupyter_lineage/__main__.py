"""`python -m jupyter_lineage ARGS` execs the `jupyter-lineage` binary."""

import sys

from jupyter_lineage import main

if __name__ == "__main__":
    sys.exit(main())
