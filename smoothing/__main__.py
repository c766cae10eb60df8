"""``python -m smoothing``: the ``segcertify`` command line (see :mod:`smoothing.cli`)."""

import sys

try:
    from smoothing.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads: one line, status 2
    print("segcertify: error: interrupted (Ctrl-C) while starting; nothing was done",
          file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main())
