"""The web page: a single-page app at `/`, on the public JSON API, served by this same service.

    assets   the page's files in memory: fingerprinted URLs, gzip, Plotly's bundle from the plotly package

Every view has its own URL (history API routing): `/` (markets), `/instruments/<id>`, `/dashboard` and
`/account` all answer the same index.html (`Cache-Control: no-cache`, with an ETag, so a reload costs a
304), and the page's script shows the view of the address. Other paths keep the API's JSON 404. Static
files live under fingerprinted URLs and are cacheable for a year. The page's Content-Security-Policy and
the other headers are set with every other answer's, by `financial.edge.policy`.
"""
from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, current_app, request

from financial.edge.response_cache import etag_matches
from financial.web import assets
from financial.web.assets import Asset, warm

__all__ = ["PAGE_ROUTES", "blueprint", "register", "warm"]

PAGE_ROUTES = ("/", "/instruments/<int:instrument_id>", "/dashboard", "/account")
IMMUTABLE = "public, max-age=31536000, immutable"

blueprint = Blueprint("web", __name__)


def _send(asset: Asset, cache_control: str) -> Response:
    """The asset, gzipped when the client accepts it; a 304 when its If-None-Match names the asset's ETag."""
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if etag_matches(request.headers.get("If-None-Match"), asset.etag):
        response = current_app.response_class(status=304, headers=headers)
        del response.headers["Content-Type"]
        return response
    body = asset.body
    if request.accept_encodings["gzip"] > 0:
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return current_app.response_class(body, content_type=asset.content_type, headers=headers)


def page(**_view_args: int) -> Response:
    """index.html, for every view's URL (the page's script reads the address)."""
    return _send(assets.assets().index, "no-cache")


@blueprint.route("/static/<path:name>")
def static_file(name: str) -> Response:
    asset = assets.assets().files.get(request.path)
    if asset is None:  # an unknown file, or one of another build
        abort(404)
    return _send(asset, IMMUTABLE)


for number, rule in enumerate(PAGE_ROUTES):
    blueprint.add_url_rule(rule, f"page_{number}", page)


def register(app: Flask) -> None:
    app.register_blueprint(blueprint)
