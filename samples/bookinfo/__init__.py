"""Istio's Bookinfo sample as four small aiohttp services, same routes and JSON as Istio's.

productpage (v1) calls details and reviews; reviews v2/v3 call ratings. Every app
forwards the trace and user headers of its inbound request on its outbound calls
(`common.FORWARD_HEADERS`). Run one with `python -m isthmus.samples.bookinfo <app>`;
`topology.APPS` lists the six workloads for the launcher.
"""
