import functools
import gc

import numpy as np
import pytest


def _without_gc_collect(fn):
    """``fn`` with ``gc.collect()`` made a no-op during the call.

    statsmodels' ``multipletests`` calls ``gc.collect()`` on every Holm call: in a
    test process that holds torch and thousands of objects that costs 0.1-1 s a call
    (the property tests that compare with statsmodels spent minutes in it). It has no
    effect on the result.
    """

    @functools.wraps(fn)
    def call(*args, **kwargs):
        real = gc.collect
        gc.collect = lambda *a, **k: 0
        try:
            return fn(*args, **kwargs)
        finally:
            gc.collect = real

    return call


try:  # before the test modules import it by name
    import statsmodels.stats.multitest as _sm_multitest
except ImportError:  # pragma: no cover - statsmodels is in the dev extra
    pass
else:
    if not hasattr(_sm_multitest.multipletests, "__wrapped__"):
        _sm_multitest.multipletests = _without_gc_collect(_sm_multitest.multipletests)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module: tiny inputs gain nothing from two, and a busy
    machine loses a lot. Request it (or ``pytestmark = pytest.mark.usefixtures(...)``)
    instead of writing a module-local copy."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cityscapes_layout(tmp_path, rng):
    """A Cityscapes folder of two 16 x 16 ``val`` images (aachen, bremen; void pixels
    included) and a 19-class U-Net checkpoint for it: ``(root, checkpoint)``."""
    torch = pytest.importorskip("torch")
    from PIL import Image

    from smoothing.models import build_model, save_checkpoint

    root = tmp_path / "cityscapes"
    ids = rng.choice([7, 8, 11, 26, 0], size=(16, 16)).astype(np.uint8)
    for city in ("aachen", "bremen"):
        stem = f"{city}_000000_000019"
        for sub, name, arr, mode in (
            ("leftImg8bit", f"{stem}_leftImg8bit.png", rng.integers(0, 256, (16, 16, 3)), "RGB"),
            ("gtFine", f"{stem}_gtFine_labelIds.png", ids, "L"),
        ):
            path = root / sub / "val" / city / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)
    torch.manual_seed(0)
    return root, save_checkpoint(build_model("unet", num_classes=19, width=4), tmp_path / "m.pt")
