"""Tests for remotecomm.tokens."""

from twisted.trial.unittest import SynchronousTestCase

from remotecomm.tokens import looks_like_token, new_token, token_hash


class TokenTests(SynchronousTestCase):
    """Tokens carry 256 random bits and are stored only as hashes."""

    def test_tokens_are_256_bit_base64url(self):
        """43 base64url characters carry 256 bits."""
        token = new_token()
        self.assertEqual(len(token), 43)
        self.assertTrue(looks_like_token(token))

    def test_tokens_are_fresh(self):
        """No two tokens are the same."""
        self.assertEqual(len({new_token() for _ in range(1000)}), 1000)

    def test_hash_is_sha256_hex(self):
        """The stored form is a SHA-256 hex digest, not the token."""
        token = new_token()
        digest = token_hash(token)
        self.assertEqual(len(digest), 64)
        self.assertNotIn(token, digest)
        self.assertEqual(digest, token_hash(token))

    def test_malformed_tokens_are_recognised(self):
        """Anything not shaped like our tokens is refused before any lookup."""
        for bad in ("", "abc", "x" * 44, "é" * 43, None, 42, "a b" + "c" * 40):
            self.assertFalse(looks_like_token(bad), bad)
