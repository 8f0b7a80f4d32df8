"""`/`: the browser dashboard page."""

from __future__ import annotations

from tornado.web import RequestHandler


class DashboardHandler(RequestHandler):
    """Renders the dashboard template; the page talks to the API with ES modules."""

    def get(self) -> None:
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
                        "frame-src 'self' blob: data:; style-src 'self'; script-src 'self'; base-uri 'none'")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.render("index.html")
