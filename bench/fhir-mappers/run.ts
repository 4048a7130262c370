/**
 * @hdx/fhir-mappers benchmark: HL7 v2 messages and VR sessions mapped per second, and validation time
 * per resource. Runs on the built package (dist), as the gateway uses it.
 *
 *   npm run bench -w fhir-mappers            (builds, then runs this file)
 *   BENCH_SECONDS=3 npm run bench -w fhir-mappers
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { hl7v2ToBundle, keyedIds, prepareValidator, validateResource, vrSessionToBundle } from '@hdx/fhir-mappers';

/** A custodian's keyed ids (a fresh secret per run: the ids themselves are not measured). */
const ids = keyedIds(randomBytes(32));

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 2);
const ROOT = join(__dirname, '..', '..', 'fhir-mappers');

function perSecond(label: string, fn: () => unknown): number {
  for (let i = 0; i < 200; i++) fn(); // warm-up
  let n = 0;
  const start = process.hrtime.bigint();
  const until = start + BigInt(Math.round(SECONDS * 1e9));
  let now = start;
  while (now < until) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    now = process.hrtime.bigint();
  }
  const rate = n / (Number(now - start) / 1e9);
  console.log(`  ${label.padEnd(44)} ${Math.round(rate).toLocaleString('en-US').padStart(10)} /s`);
  return rate;
}

function latencies(label: string, fn: () => unknown, iterations: number): void {
  for (let i = 0; i < Math.min(iterations, 500); i++) fn();
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    fn();
    samples[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  samples.sort();
  const q = (p: number): string => (samples[Math.min(iterations - 1, Math.floor(p * iterations))] ?? 0).toFixed(1);
  console.log(`  ${label.padEnd(44)} median ${q(0.5).padStart(7)} µs   p99 ${q(0.99).padStart(7)} µs`);
}

function main(): void {
  const cpu = cpus();
  console.log('@hdx/fhir-mappers benchmark');
  console.log(
    `  machine: ${cpu.length} cores (${cpu[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`,
  );
  console.log(`  ${SECONDS} s per throughput figure, single thread`);

  const t0 = process.hrtime.bigint();
  prepareValidator();
  console.log(`  schema load + compile (once per process): ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`);

  const adt = readFileSync(join(ROOT, 'test-data', 'hl7v2', 'adt-a01.hl7'), 'utf8');
  const oru = readFileSync(join(ROOT, 'test-data', 'hl7v2', 'oru-r01.hl7'), 'utf8');
  const vr = JSON.parse(readFileSync(join(ROOT, 'src', 'vr-session', 'example.json'), 'utf8')) as unknown;

  console.log('\nmapped per second (map only | map + validate the Bundle, the default)');
  perSecond('HL7 v2 ADT^A01 (Patient + Encounter)', () => hl7v2ToBundle(adt, { ids, validate: false }));
  perSecond('HL7 v2 ADT^A01, validated', () => hl7v2ToBundle(adt, { ids }));
  perSecond('HL7 v2 ORU^R01 (Patient + 5 Obs + report)', () => hl7v2ToBundle(oru, { ids, validate: false }));
  perSecond('HL7 v2 ORU^R01, validated', () => hl7v2ToBundle(oru, { ids }));
  perSecond('VR session (15 resources)', () => vrSessionToBundle(vr, { ids, validate: false }));
  perSecond('VR session, validated', () => vrSessionToBundle(vr, { ids }));

  console.log('\nvalidateResource time per resource');
  const bundles = [hl7v2ToBundle(adt, { ids }), hl7v2ToBundle(oru, { ids }), vrSessionToBundle(vr, { ids })];
  const byType = new Map<string, unknown>();
  for (const b of bundles) for (const e of b.entry ?? []) if (e.resource && !byType.has(e.resource.resourceType)) byType.set(e.resource.resourceType, e.resource);
  const all = bundles.flatMap((b) => (b.entry ?? []).map((e) => e.resource));
  let i = 0;
  latencies(`any resource (${all.length} from the mapped Bundles)`, () => validateResource(all[i++ % all.length]), 20_000);
  for (const [type, resource] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    latencies(type, () => validateResource(resource), 5_000);
  }
  latencies('Bundle: VR session (15 entries)', () => validateResource(bundles[2]), 2_000);
  latencies('Bundle: ORU^R01 (7 entries)', () => validateResource(bundles[1]), 2_000);
  const invalid = { resourceType: 'Patient', name: [{ given: [1] }], birthDate: 'x', gender: 'y' };
  latencies('invalid Patient (3 issues)', () => validateResource(invalid), 5_000);
}

main();
