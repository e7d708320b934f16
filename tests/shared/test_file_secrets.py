"""shared/file_secrets.py: the file-backed SDS names both agents serve."""
from isthmus.shared.file_secrets import FileSecret, is_file_secret, parse_file_secret, system_roots_file


def test_cert_and_root_names():
    assert parse_file_secret("file-cert:/c.pem~/k.pem") == FileSecret("file-cert:/c.pem~/k.pem", cert="/c.pem", key="/k.pem")
    assert parse_file_secret("file-cert:/c.pem~/k.pem").paths == ("/c.pem", "/k.pem")
    assert parse_file_secret("file-root:/ca.pem") == FileSecret("file-root:/ca.pem", ca="/ca.pem")
    assert parse_file_secret("file-root:/ca.pem").paths == ("/ca.pem",)


def test_system_roots_and_malformed_names():
    system = parse_file_secret("file-root:system")
    assert system is not None and system.ca == system_roots_file() != ""
    for bad in ("file-cert:/c.pem", "file-cert:~/k.pem", "file-cert:/c.pem~", "file-root:", "default", "ROOTCA"):
        assert parse_file_secret(bad) is None, bad
    assert is_file_secret("file-root:x") and is_file_secret("file-cert:x") and not is_file_secret("kubernetes://x")
