"""`/`: the browser dashboard page."""

from __future__ import annotations

from tornado.web import RequestHandler


class DashboardHandler(RequestHandler):
    """Renders the dashboard template; the page talks to the API with ES modules."""

    def get(self) -> None:
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
                        "frame-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
                        "base-uri 'none'")
        # 'unsafe-inline' styles: a job's preview is a srcdoc frame, which inherits this policy, and should
        # keep the page's own inline CSS; scripts stay 'self' only, and the frame is sandboxed besides.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.render("index.html")
