"""load/spy_report.py: py-spy's raw samples folded into the rows of docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    # load/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("spy_report", REPO / "load" / "spy_report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


SITE = "/work/x/.venv/lib/python3.11/site-packages"
SAMPLES = [
    # the event loop endorsing an access request, inside Cedar
    f'process 1:"main";Runner.run (asyncio/runners.py:86);'
    f"request_access ({REPO}/gateway/routes/access_requests.py:22);"
    f"is_authorized_batch ({SITE}/cedarpy/__init__.py:270) 6",
    # a key-release worker thread
    f"thread 2;_worker (concurrent/futures/thread.py:69);"
    f"verify_and_release ({REPO}/gateway/service/core.py:315);"
    f"verify ({REPO}/crypto/signing.py:65) 3",
    # the same request's authentication, then something no row claims
    f'process 1:"main";Runner.run (asyncio/runners.py:86);'
    f"GatewayMiddleware._admit ({REPO}/gateway/app.py:165);verify ({REPO}/crypto/signing.py:65) 1",
    "thread 3;mystery (x.py:1) 2",
    "a line that is not a sample",
]


def test_samples_fall_into_their_operation_and_functions_lose_their_paths() -> None:
    spy = _module()
    report = spy.parse(SAMPLES, str(REPO))
    assert report.total == 12
    assert report.by_category == {
        "POST /v1/access-requests: endorse RequestAccess": 6,
        "key release: re-verify the committed event, re-seal, log": 3,
        "request authentication: RFC 9421 signature, nonce": 1,
        spy.OTHER: 2,
    }
    assert report.own == {
        "is_authorized_batch (cedarpy/__init__.py)": 6,
        "verify (crypto/signing.py)": 4,
        "mystery (x.py)": 2,
    }
    text = report.render(top=2)
    assert "50.0%  POST /v1/access-requests: endorse RequestAccess" in text
    assert "33.3%  verify (crypto/signing.py)" in text
    assert "mystery" not in text.split("by function")[1]  # only the top 2 functions
