"""HTTP/1.1 codecs over httptools (llhttp): `Http1ServerConnection` for downstream
connections (http1_server.py) and `Http1ClientConnection` for upstream ones
(http1_client.py); framing and limits they share live in http1_common.py.
"""
from .http1_client import Http1ClientConnection
from .http1_common import LocalProtocolError
from .http1_server import Http1ServerConnection

__all__ = ["Http1ClientConnection", "Http1ServerConnection", "LocalProtocolError"]
