"""Key material and signing: key types, the CSR rules, the signing authority, the trust bundle."""
