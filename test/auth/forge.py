#!/usr/bin/env python3
"""test/auth/forge.py: tokens the bridge must refuse, for test/suites/62-auth.sh.

`aegis-bridge token` only mints good tokens; the tests also need expired ones,
unsigned ones, tokens with a wrong audience or claims of the wrong type.  This
signs them with HMAC-SHA256 from Python's standard library (a test tool: the
bridge itself verifies with libjwt).

  forge.py SECRET_FILE CLAIMS_JSON [--alg HS256|none] [--header JSON]
      [--exp-in SECONDS] [--nbf-in SECONDS] [--tamper]
Prints the token.  --exp-in/--nbf-in set exp/nbf relative to now; --tamper
changes one character of the signature.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("secret_file")
    ap.add_argument("claims")
    ap.add_argument("--alg", default="HS256", choices=["HS256", "none"])
    ap.add_argument("--header")
    ap.add_argument("--exp-in", type=int)
    ap.add_argument("--nbf-in", type=int)
    ap.add_argument("--tamper", action="store_true")
    a = ap.parse_args()
    claims = json.loads(a.claims)
    now = int(time.time())
    if a.exp_in is not None:
        claims["exp"] = now + a.exp_in
    if a.nbf_in is not None:
        claims["nbf"] = now + a.nbf_in
    header = json.loads(a.header) if a.header else {"alg": a.alg, "typ": "JWT"}
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    if a.alg == "none":
        print(signing + ".")
        return 0
    secret = open(a.secret_file, "rb").read()
    sig = b64url(hmac.new(secret, signing.encode(), hashlib.sha256).digest())
    if a.tamper:
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    print(signing + "." + sig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
