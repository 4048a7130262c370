#!/usr/bin/env bash
# The consent flow of README.md, runnable against `npm start` (hospital1 :8080, hospital2 :8081,
# regulator :8082): a hospital2 practitioner is denied a hospital1 record, the patient signs a consent,
# access succeeds and is recorded, the patient revokes, access is denied again, and the regulator's
# auditor and the patient read the access history. Keys are written to a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
hdx() { node gateway/dist/cli.js "$@"; }
json() { node -e 'const v=JSON.parse(require("fs").readFileSync(0)); const p=process.argv[1].split("."); let x=v; for (const k of p) x=x[k]; console.log(x)' "$1"; }
K=.hdx/network/gateways
H1=http://127.0.0.1:8080/fhir H2=http://127.0.0.1:8081/fhir REG=http://127.0.0.1:8082/fhir
W=$(mktemp -d)
[ -f "$K/hospital1-idp-private.pem" ] || { echo "start HDX first: npm start" >&2; exit 1; }

# An organization's admin, as its (development) identity provider vouches for them.
admin() { hdx idp-token --idp-key "$K/$1-idp-private.pem" --iss "https://idp.$1.hdx.test" --aud "$2" --sub "admin-$1" --role admin --scope 'user/*.*' --purpose TREAT; }
# register GATEWAY_FHIR_BASE ORG NAME KIND: a DID registered on the ledger through the org's gateway.
register() {
  hdx keygen --out "$W/$3.json" >/dev/null
  curl -fsS -X POST "${1%/fhir}/did" -H "authorization: Bearer $(admin "$2" "$1")" -H 'content-type: application/json' \
    -d "$(hdx did-proof --key "$W/$3.json" --kind "$4")" | json didDocument.id
}
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

echo "== DIDs: a patient and a practitioner at hospital1, a practitioner at hospital2, an auditor at the regulator"
PATIENT=$(register $H1 hospital1 patient patient)
DR1=$(register $H1 hospital1 dr-h1 practitioner)
register $H2 hospital2 dr-h2 practitioner >/dev/null
register $REG regulator auditor auditor >/dev/null
echo "patient $PATIENT"

echo "== hospital1 records the patient (linked to the DID) and a heart rate"
STAFF=$(hdx idp-token --idp-key $K/hospital1-idp-private.pem --iss https://idp.hospital1.hdx.test --aud $H1 --sub dr-h1 \
  --role practitioner --scope 'user/*.*' --purpose TREAT --did "$DR1")
PID=$(curl -fsS -X POST $H1/Patient -H "authorization: Bearer $STAFF" -H 'content-type: application/fhir+json' \
  -d '{"resourceType":"Patient","identifier":[{"system":"urn:ietf:rfc:3986","value":"'"$PATIENT"'"}],"name":[{"family":"Example","given":["Ada"]}]}' | json id)
OBS=$(curl -fsS -X POST $H1/Observation -H "authorization: Bearer $STAFF" -H 'content-type: application/fhir+json' \
  -d '{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
       "subject":{"reference":"Patient/'"$PID"'"},"effectiveDateTime":"2026-11-20T09:30:00Z",
       "valueQuantity":{"value":64,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}' | json id)

# Dr H2's DID tokens are self-signed and single-use: a fresh one per request.
asDrH2() { hdx token --key "$W/dr-h2.json" --aud $H1 --scope 'user/*.read' --purpose TREAT; }
# The patient acts under the patient's own purpose of use (PATRQT): TREAT is for practitioners.
asPatient() { hdx token --key "$W/patient.json" --aud "$1" --scope "$2" --purpose PATRQT; }

echo "== 1. Dr H2 (hospital2) reads the Observation at hospital1 without consent: $(status "$H1/Observation/$OBS" -H "authorization: Bearer $(asDrH2)") (404 expected: denied looks exactly like absent)"

cat >"$W/consent.json" <<JSON
{"resourceType": "Consent", "id": "$(node -p 'crypto.randomUUID()')", "status": "active",
 "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
 "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
 "patient": {"reference": "$PATIENT"},
 "provision": {"type": "permit",
   "actor": [{"reference": {"identifier": {"system": "urn:hdx:msp", "value": "Hospital2MSP"}}}],
   "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}}
JSON
CONSENT=$(json id <"$W/consent.json")
echo "== 2. the patient signs a consent for hospital2 (treatment): $(status -X POST $H1/Consent -H "authorization: Bearer $(asPatient $H1 patient/Consent.write)" \
  -H 'content-type: application/jose' --data "$(hdx consent-sign --key "$W/patient.json" --consent "$W/consent.json" --action grant)") (201 expected)"
echo "== 3. Dr H2 reads it again: $(status "$H1/Observation/$OBS" -H "authorization: Bearer $(asDrH2)") (200 expected)"
echo "== 4. the patient revokes: $(status -X PUT "$H1/Consent/$CONSENT" -H "authorization: Bearer $(asPatient $H1 patient/Consent.write)" \
  -H 'content-type: application/jose' --data "$(hdx consent-sign --key "$W/patient.json" --consent "$W/consent.json" --action revoke)") (200 expected)"
echo "== 5. Dr H2 reads it again: $(status "$H1/Observation/$OBS" -H "authorization: Bearer $(asDrH2)") (404 expected)"

echo "== 6. the regulator's auditor reads the patient's access history (AuditEvent):"
# shellcheck disable=SC2016 # the node script below uses a JavaScript template literal
curl -fsS "$REG/AuditEvent?patient=$PATIENT" -H "authorization: Bearer $(hdx token --key "$W/auditor.json" --aud $REG --scope 'user/AuditEvent.read' --purpose HOPERAT)" |
  node -e 'for (const {resource: e} of JSON.parse(require("fs").readFileSync(0)).entry) console.log(`   ${e.recorded}  ${e.subtype[0].code.padEnd(7)} ${e.outcomeDesc.padEnd(26)} by ${e.agent[0].who.identifier.value}`)'
echo "== 7. the patient reads their own: $(curl -fsS "$H1/AuditEvent?patient=$PATIENT" -H "authorization: Bearer $(asPatient $H1 patient/AuditEvent.read)" | json entry.length) events"
rm -rf "$W"
