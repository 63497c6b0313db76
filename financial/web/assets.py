"""The page's files, held in memory once per process: fingerprinted, gzipped, ready to send.

Two kinds:
- the project's own files under financial/web/static/ (HTML, CSS, ES modules), published together under
  `/static/<build>/...`, where `build` is a hash of all of them: a module's relative imports stay within one
  build, and any change to any file gives every file a new URL, so each can be cached for a year;
- Plotly's JavaScript bundle as the installed `plotly` Python package ships it
  (plotly/package_data/plotly.min.js, what `plotly.offline.get_plotlyjs()` returns), under
  `/static/vendor/plotly-<hash of the file>.min.js`. Nothing of it is copied into the repository and no page
  loads anything from another host.

index.html is the one file not served under its build: it is the page of every view, with the build's
and Plotly's URLs written into it (Plotly as an async script, so it compiles while the page's modules load
and ask for their data; the modules announced with modulepreload, so they load at once). The files are read
and compressed (gzip, level 6: 0.2 s for Plotly's 4.8 MB, 1.5 MB compressed) the first time anything asks
for them, or at start-up (`warm`).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: bytes
    gzipped: bytes
    etag: str


@dataclass(frozen=True)
class Assets:
    build: str
    plotly_url: str
    files: dict[str, Asset]  # by URL path
    index: Asset

    def url(self, name: str) -> str:
        return f"/static/{self.build}/{name}"


def _digest(data: bytes, size: int = 8) -> str:
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def _asset(name: str, body: bytes) -> Asset:
    return Asset(TYPES[Path(name).suffix], body, gzip.compress(body, compresslevel=COMPRESS_LEVEL, mtime=0),
                 f'"{_digest(body, 12)}"')


def plotly_bundle() -> Path:
    """plotly.min.js inside the installed plotly package (found without importing the package)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed (it is in requirements.txt)")
    bundle = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not bundle.is_file():
        raise RuntimeError(f"the plotly package has no JavaScript bundle at {bundle}")
    return bundle


def _own_files() -> dict[str, bytes]:
    return {path.relative_to(STATIC).as_posix(): path.read_bytes()
            for path in sorted(STATIC.rglob("*")) if path.is_file() and path.suffix in TYPES}


def load() -> Assets:
    own = _own_files()
    template = own.pop(INDEX)
    build = _digest(b"".join(name.encode() + b"\0" + body for name, body in sorted(own.items())))
    plotly = plotly_bundle().read_bytes()
    plotly_url = f"/static/vendor/plotly-{_digest(plotly)}.min.js"
    files = {f"/static/{build}/{name}": _asset(name, body) for name, body in own.items()}
    files[plotly_url] = _asset("plotly.min.js", plotly)
    # Every module is announced up front, so the browser fetches them at once rather than import by import.
    preloads = "\n".join(f'<link rel="modulepreload" href="/static/{build}/{name}">'
                         for name in sorted(own) if name.endswith(".js"))
    index = (template.decode().replace("{{modulepreload}}", preloads).replace("{{static}}", f"/static/{build}")
             .replace("{{plotly}}", plotly_url))
    return Assets(build, plotly_url, files, _asset(INDEX, index.encode()))


_loaded: Assets | None = None
_lock = threading.Lock()


def assets() -> Assets:
    """This process's assets, loaded on first use."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = load()
    return _loaded


def warm() -> None:
    """Load the assets now (at start-up: before gunicorn forks its workers, which then share them)."""
    assets()
