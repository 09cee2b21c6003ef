#!/usr/bin/env bash
# test/tls/mkcerts.sh DIR: makes the certificates of the TLS tests with openssl.
# Owns nothing outside DIR.  Writes:
#   ca.pem ca.key            a test CA (clients trust it with --cacert / NSS)
#   server.pem server.key    localhost + 127.0.0.1, signed by the CA, valid 30 days
#   second.pem second.key    another pair for the same names (CN aegis-test-second):
#                            the SIGHUP reload test swaps it in
#   expired.pem expired.key  valid 2020-01-01 .. 2020-01-02 only
#   future.pem future.key    not valid before 2099
#   garbage.pem              not PEM at all
#   empty.pem                zero bytes
# A key that does not match a certificate is server.pem + second.key.
# Every file is made fresh; exit status 1 (with openssl's words) on failure.
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
rm -rf ca-db && mkdir ca-db && : >ca-db/index.txt && echo 1000 >ca-db/serial

cat >ca.cnf <<'CNF'
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = ./ca-db
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = policy_any
copy_extensions = none
unique_subject = no
x509_extensions = server_ext
[ policy_any ]
commonName = supplied
[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = aegis-test-ca
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

log=mkcerts.log
: >"$log"
run() { "$@" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }

run openssl req -x509 -config ca.cnf -extensions ca_ext -newkey rsa:2048 -nodes \
    -keyout ca.key -out ca.pem -days 30

# issue NAME CN [ca options...]: NAME.key + NAME.pem signed by the CA
issue() {
    local name=$1 cn=$2; shift 2
    run openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" \
        -subj "/CN=$cn"
    run openssl ca -batch -config ca.cnf -notext -in "$name.csr" -out "$name.pem" "$@"
    rm -f "$name.csr"
}
issue server localhost -days 30
issue second aegis-test-second -days 30
issue expired localhost -startdate 20200101000000Z -enddate 20200102000000Z
issue future localhost -startdate 20990101000000Z -enddate 20991231000000Z
echo "this is not a certificate" >garbage.pem
: >empty.pem
chmod 600 ./*.key
