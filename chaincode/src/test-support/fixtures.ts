/**
 * A self-signed test certificate (no private key kept) carrying the Fabric CA attribute extension
 * (OID 1.2.3.4.5.6.7.8.1) {"attrs":{"hdx.role":"gateway"}}, for tests that go through fabric-shim's ClientIdentity.
 * Made with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=gateway/OU=client/O=Hospital1"
 *   -days 36500 -addext "1.2.3.4.5.6.7.8.1=DER:<hex of the JSON>"
 */
export const GATEWAY_CERT_PEM = `-----BEGIN CERTIFICATE-----
MIIB9DCCAZqgAwIBAgIUPO8O77Uw7A+4YS8vURpP8MF8mW4wCgYIKoZIzj0EAwIw
NzEQMA4GA1UEAwwHZ2F0ZXdheTEPMA0GA1UECwwGY2xpZW50MRIwEAYDVQQKDAlI
b3NwaXRhbDEwIBcNMjYxMTIxMDU1MzAwWhgPMjEyNjEwMjgwNTUzMDBaMDcxEDAO
BgNVBAMMB2dhdGV3YXkxDzANBgNVBAsMBmNsaWVudDESMBAGA1UECgwJSG9zcGl0
YWwxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYGawg3Kfe6/BgYWbZOhkOOVd
lwTIoVpybgWDAjVR9gR8iYHkbseRcCKXu9A5KKiUJ+mfeOSBol6Jf1QVJaFUx6OB
gTB/MB0GA1UdDgQWBBT/mU2y5OD9wZ2ixqdvT3nIDRtYAzAfBgNVHSMEGDAWgBT/
mU2y5OD9wZ2ixqdvT3nIDRtYAzAPBgNVHRMBAf8EBTADAQH/MCwGCCoDBAUGBwgB
BCB7ImF0dHJzIjp7ImhkeC5yb2xlIjoiZ2F0ZXdheSJ9fTAKBggqhkjOPQQDAgNI
ADBFAiAUlYuzOo5YzFuwwPn48v6Pf1pQfY1vYEqxU85q7iRQ4QIhAPC8Whiq1YnN
cko/Iyh077i4esv6a0TzWpjcvY1VCQ5E
-----END CERTIFICATE-----
`;
