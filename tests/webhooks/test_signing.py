"""Signatures as the Standard Webhooks specification defines them, checked on its published vector."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from routing.webhooks.signing import BadSecret, generate_secret, secret_key, signature, signature_header, verify


def test_the_specifications_published_vector():
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_generated_secrets_are_whsec_base64_of_32_random_bytes():
    one, two = generate_secret(), generate_secret()
    assert one.startswith("whsec_") and one != two
    assert len(base64.b64decode(one[6:])) == 32


def test_a_rotation_signs_with_both_keys_and_either_verifies():
    old, new = generate_secret(), generate_secret()
    header = signature_header([secret_key(new), secret_key(old)], "msg_1", 1700000000, b"{}")
    assert len(header.split()) == 2
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": header}
    assert verify(old, headers, b"{}") and verify(new, headers, b"{}")
    assert not verify(generate_secret(), headers, b"{}")


@pytest.mark.parametrize("bad", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()])
def test_bad_secrets_are_refused(bad):
    with pytest.raises(BadSecret):
        secret_key(bad)


def test_the_signature_is_hmac_sha256_over_id_timestamp_body():
    key = b"k" * 32
    expected = base64.b64encode(hmac.new(key, b"msg_x.42.body", hashlib.sha256).digest()).decode()
    assert signature(key, "msg_x", 42, b"body") == "v1," + expected
