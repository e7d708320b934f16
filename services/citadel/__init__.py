"""Citadel, the mesh CA: signs CSRs into SPIFFE X.509 certificates (Istio's CA API).

    spiffe.py       identities              pki/      keys, CSR rules, signing, bundle, data dir
    authn/          who is calling          server.py gRPC shell   app.py / main.py  the process
    client.py       citadel client          certmanager.py, tls.py, sds.py  the workload side
"""
