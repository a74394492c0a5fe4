"""The sandbox's key files: made once in a directory and reused, private keys readable by their
owner only, the app key also in .NET's RSA XML format, and a ten-year token certificate."""

from __future__ import annotations

import base64
import hashlib
import stat
from datetime import datetime, timezone
from xml.etree import ElementTree

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from sandbox.keys import SandboxKeys

XML_FIELDS = ["Modulus", "Exponent", "P", "Q", "DP", "DQ", "InverseQ", "D"]


def test_the_files_are_made_with_private_keys_readable_by_the_owner_only(tmp_path):
    SandboxKeys.load_or_create(tmp_path / "keys")
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "keys").iterdir()}
    assert modes == {"app-private-key.pem": 0o600, "app-private-key.xml": 0o600,
                     "superoffice-token-key.pem": 0o600, "superoffice-token-certificate.pem": 0o644}


def test_a_second_load_reuses_the_files(tmp_path):
    first = SandboxKeys.load_or_create(tmp_path)
    contents = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    second = SandboxKeys.load_or_create(tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == contents
    assert second.kid == first.kid and second.jwk() == first.jwk()


def test_the_pem_key_is_pkcs8_and_the_xml_key_holds_the_same_numbers(tmp_path):
    keys = SandboxKeys.load_or_create(tmp_path)
    pem = keys.app_private_key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    numbers = serialization.load_pem_private_key(pem, password=None).private_numbers()
    root = ElementTree.parse(keys.app_private_key_xml_file).getroot()
    assert root.tag == "RSAKeyValue" and [child.tag for child in root] == XML_FIELDS
    values = {child.tag: base64.b64decode(child.text) for child in root}
    assert values["Exponent"] == b"\x01\x00\x01"
    assert len(values["Modulus"]) == 256
    expected = {"Modulus": numbers.public_numbers.n, "Exponent": numbers.public_numbers.e,
                "P": numbers.p, "Q": numbers.q, "DP": numbers.dmp1, "DQ": numbers.dmq1,
                "InverseQ": numbers.iqmp, "D": numbers.d}
    assert {name: int.from_bytes(raw, "big") for name, raw in values.items()} == expected


def test_the_token_certificate_is_self_signed_for_ten_years_and_its_thumbprint_is_the_kid(tmp_path):
    keys = SandboxKeys.load_or_create(tmp_path)
    certificate = keys.token_certificate
    (name,) = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert name.value == "SuperOffice sandbox federated login" and certificate.issuer == certificate.subject
    years = (certificate.not_valid_after_utc - datetime.now(timezone.utc)).days / 365
    assert 9.9 < years <= 10.01
    assert keys.kid == hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert certificate.public_key().public_numbers() == keys.token_signing_key.public_key().public_numbers()
