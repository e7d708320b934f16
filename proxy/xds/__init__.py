"""The proxy's xDS client: pilot's ADS stream → frozen `config.Snapshot`s for the data plane.

    node.py    the Envoy Node (same as the bootstrap a real Envoy gets)
    state.py   pure protocol state: subscriptions, ACK/NACK, warming, publish decisions
    client.py  the grpc.aio shell: channel (plaintext or mTLS), stream, reconnect/backoff
"""
