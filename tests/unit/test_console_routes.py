"""services/console/routes.py: the console's page and assets, public, with the right content
types, a strict Content-Security-Policy, ETags, a 404 for any name that is not one of its files
(path traversal included), and a server that starts without ECharts. Through the real gateway
(its authentication middleware) on a loopback port, over raw sockets so that paths reach it as sent.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from aiohttp import web

from services.console.routes import ECHARTS_ASSET, STATIC, Console, add_console_routes, is_console_path
from tests.unit.test_gateway_api import Served


@pytest.fixture(scope="module")
def served():
    running = Served()
    yield running
    running.stop()


def csp_directives(header: str) -> dict[str, str]:
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


def test_the_page_is_public_html_with_a_strict_policy(served: Served) -> None:
    status, headers, body = served.request("GET", "/", token=None)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    policy = csp_directives(headers["content-security-policy"])
    assert policy["default-src"] == "default-src 'none'"
    assert policy["script-src"] == "script-src 'self'"
    assert policy["connect-src"] == "connect-src 'self'"
    assert policy["style-src"] == "style-src 'self'"
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "unsafe-eval" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"
    page = body.decode("utf-8")
    assert '<script type="module" src="/console/js/app.js"></script>' in page
    # no inline script or style, and nothing from another origin
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/js/app.js", "text/javascript; charset=utf-8"),
        ("/console/js/pages/queue.js", "text/javascript; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_public_with_their_content_type(served: Served, path: str, content_type: str) -> None:
    status, headers, body = served.request("GET", path, token=None)
    assert status == 200, body
    assert headers["content-type"] == content_type
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert body


def test_an_unchanged_asset_answers_304(served: Served) -> None:
    _, headers, _ = served.request("GET", "/console/js/app.js", token=None)
    status, again, body = served.request("GET", "/console/js/app.js", token=None,
                                         headers={"If-None-Match": headers["etag"]})  # fmt: skip
    assert status == 304 and again["etag"] == headers["etag"] and body == b""


def test_the_api_stays_authenticated(served: Served) -> None:
    for path in ("/v1/alerts", "/favicon.ico", "/index.html", "/consolex/app.js"):
        status, _, body = served.request("GET", path, token=None)
        assert status == 401, (path, body)


@pytest.mark.parametrize(
    "path",
    [
        "/console/nothing.js",
        "/console/",
        "/console/index.html",
        "/console/../routes.py",
        "/console/js/../../routes.py",
        "/console/%2e%2e/routes.py",
        "/console/..%2f..%2fpyproject.toml",
        "/console/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/console/js/../../../../pyproject.toml",
        "/console//etc/passwd",
        "/console/vendor/../package.json",
    ],
)
def test_no_name_outside_the_assets_is_served(served: Served, path: str) -> None:
    status, headers, body = served.request("GET", path, token=None)
    assert status in (401, 404), (path, status, body[:200])
    assert b"[project]" not in body and b"root:" not in body and b"aiohttp" not in body


def test_the_public_paths() -> None:
    assert is_console_path("/") and is_console_path("/console/js/app.js")
    assert not any(map(is_console_path, ("/v1/alerts", "/consoles", "/index.html", "/console")))


def test_no_script_builds_markup_from_strings() -> None:
    for script in (STATIC / "js").rglob("*.js"):
        text = script.read_text(encoding="utf-8")
        for unsafe in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert unsafe not in text, f"{script.name} uses {unsafe}"
        assert "http://" not in text and "https://" not in text, script.name


def test_the_server_starts_without_echarts_and_says_so(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="fundwatch.console"):
        console = Console(STATIC, tmp_path / "missing" / "echarts.min.js")
    assert not console.charts and ECHARTS_ASSET not in console.assets
    assert b'data-charts="off"' in console.index.body
    assert any("console charts unavailable" in r.getMessage() for r in caplog.records)
    router = web.UrlDispatcher()
    add_console_routes(router, console)  # the routes are added all the same


def test_echarts_is_served_when_installed(tmp_path: Path) -> None:
    fake = tmp_path / "echarts.min.js"
    fake.write_text("/* echarts */ window.echarts = {};")
    console = Console(STATIC, fake)
    assert console.charts and b'data-charts="on"' in console.index.body
    assert console.assets[ECHARTS_ASSET].content_type == "text/javascript; charset=utf-8"
    assert console.assets[ECHARTS_ASSET].body == fake.read_bytes()
