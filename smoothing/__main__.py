"""``python -m smoothing``: the ``segcertify`` command line (see :mod:`smoothing.cli`)."""

import sys

from smoothing.cli import main

if __name__ == "__main__":
    sys.exit(main())
