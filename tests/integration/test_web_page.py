"""The web page's HTTP side: `/` and every view's URL answer index.html with the page's CSP; static files
under fingerprinted URLs, gzipped when asked, cacheable for a year; Plotly's bundle is the installed plotly
package's own file; nothing refers to another host; unknown paths keep the JSON 404."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re

import pytest

from financial.edge import policy
import financial.web.assets as web_assets
from financial.web import PAGE_ROUTES
from tests.conftest import base_settings

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from financial import create_app
    app = create_app(base_settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}"),
                     process="test")
    return app.test_client()


@pytest.fixture(scope="module")
def assets():
    return web_assets.assets()


def test_every_view_url_is_the_page_with_its_csp(client, assets):
    urls = [re.sub(r"<int:\w+>", "3", rule) for rule in PAGE_ROUTES]
    assert urls == ["/", "/instruments/3", "/dashboard", "/account"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert response.headers["Content-Security-Policy"] == policy.PAGE_CSP
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"] == assets.index.etag
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.data == assets.index.body
    again = client.get("/", headers={"If-None-Match": assets.index.etag})
    assert again.status_code == 304 and again.data == b""


def test_the_page_csp_allows_scripts_and_connections_only_from_this_origin():
    directives = dict(part.strip().split(" ", 1) for part in policy.PAGE_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in policy.PAGE_CSP and "unsafe-eval" not in policy.PAGE_CSP
    assert directives["frame-ancestors"] == "'none'"


def test_the_style_hashes_are_those_of_the_installed_plotly_bundle():
    """The two <style> elements Plotly's bundle creates: an empty one and MapLibre's stylesheet (whose text
    sits in the bundle as a JavaScript string). A plotly upgrade that changes them fails here, by name."""
    bundle = web_assets.plotly_bundle().read_text(encoding="utf-8")
    assert bundle.count('createElement("style")') == 2
    literal = re.search(r'e\.id="[0-9a-f]{64}",e\.textContent=\'((?:[^\'\\]|\\.)*)\'', bundle).group(1)
    text = json.loads('"' + literal.replace('"', '\\"').replace("\\'", "'") + '"')
    for content in ("", text):
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy.PLOTLY_STYLE_HASHES, f"plotly's style text changed: sha256-{digest}"


def test_static_files_are_fingerprinted_gzipped_and_immutable(client, assets):
    names = {url.split("/", 3)[3] for url in assets.files if not url.startswith("/static/vendor/")}
    assert {"app.css", "icon.svg", "js/app.js", "js/api.js", "js/views/markets.js"} <= names
    for url, asset in assets.files.items():
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
        assert plain.status_code == packed.status_code == 200
        assert plain.data == asset.body and "Content-Encoding" not in plain.headers
        assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.data) == asset.body
        for response in (plain, packed):
            assert response.headers["Cache-Control"] == IMMUTABLE and response.headers["Vary"] == "Accept-Encoding"
            assert response.headers["Content-Type"] == asset.content_type
        assert client.get(url, headers={"If-None-Match": asset.etag}).status_code == 304


def test_plotly_is_the_plotly_packages_own_bundle(client, assets):
    bundle = web_assets.plotly_bundle().read_bytes()
    digest = hashlib.blake2b(bundle, digest_size=8).hexdigest()
    assert assets.plotly_url == f"/static/vendor/plotly-{digest}.min.js"
    assert client.get(assets.plotly_url, headers={"Accept-Encoding": ""}).data == bundle
    import plotly.offline
    assert bundle.decode() == plotly.offline.get_plotlyjs()


def test_a_change_to_any_file_changes_every_url(monkeypatch, tmp_path, assets):
    for path in web_assets.STATIC.rglob("*"):
        if path.is_file():
            target = tmp_path / path.relative_to(web_assets.STATIC)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    monkeypatch.setattr(web_assets, "STATIC", tmp_path)
    assert web_assets.load().build == assets.build
    (tmp_path / "app.css").write_text("body { color: red }")
    changed = web_assets.load()
    assert changed.build != assets.build and changed.plotly_url == assets.plotly_url
    assert f"/static/{changed.build}/js/app.js" in changed.index.body.decode()


def test_the_page_refers_only_to_this_origin(assets):
    page = assets.index.body.decode()
    urls = [url for url in re.findall(r'(?:src|href)="([^"]+)"', page) if not url.startswith("#")]
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls)
    assert assets.plotly_url in urls and f"/static/{assets.build}/js/app.js" in urls
    for url, asset in assets.files.items():
        if url.endswith((".js", ".css")) and "/vendor/" not in url:
            # the page's own files name no other host (XML namespace names are names, not addresses)
            assert not re.search(rb"https?://(?!www\.w3\.org/)", asset.body), url
    assert "<script>" not in page and " style=" not in page  # no inline script, no style attribute


def test_unknown_paths_keep_the_json_404(client, assets):
    for url in ("/static/0000000000000000/app.css", f"/static/{assets.build}/nope.js", "/static/vendor/x.js",
                "/nope", "/instruments/abc", "/api/nope"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.get_json() == {"data": None, "info": {"error": f"not found: {url}"}}
    assert client.get("/api/nope").headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
