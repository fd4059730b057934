"""A city's own map tiles for the console's map, served on loopback: each 256-pixel tile a
pale square with its border and its z/x/y drawn in, so a screenshot shows how the tiles lie
under the grid."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

TILE = re.compile(r"^/tiles/(\d+)/(\d+)/(\d+)\.png$")


def tile_png(z: int, x: int, y: int) -> bytes:
    image = np.full((256, 256, 3), (226, 236, 232), np.uint8)
    cv2.rectangle(image, (0, 0), (255, 255), (180, 196, 190), 1)
    cv2.putText(image, f"{z}/{x}/{y}", (8, 248), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (130, 150, 140))
    ok, png = cv2.imencode(".png", image)
    assert ok
    return png.tobytes()


class TileServer:
    """`with TileServer() as tiles:` serves /tiles/{z}/{x}/{y}.png; `served` lists the paths."""

    def __init__(self) -> None:
        self.served: list[str] = []
        served = self.served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API names it
                m = TILE.match(self.path)
                if m is None:
                    self.send_error(404)
                    return
                body = tile_png(*(int(g) for g in m.groups()))
                served.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.template = f"http://127.0.0.1:{self.server.server_port}/tiles/{{z}}/{{x}}/{{y}}.png"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TileServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
