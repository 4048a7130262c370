/// <reference lib="dom" />
/**
 * The patient's web app (issue 12) in a real Chromium (Debian's `chromium`, driven by puppeteer-core) on
 * the real network, on a phone-sized screen: the patient creates a key in the page, the hospital
 * registers the DID, the patient grants a consent to Hospital2MSP in the page and a hospital2
 * practitioner's read then succeeds; the access history shows it (and a break-glass read, highlighted);
 * the patient revokes in the page and the next read is denied. With the app open, a hospital2 read
 * appears in the page without reloading (live notifications, server-sent events from committed blocks),
 * announced in an aria-live region. The patient checks their records against the ledger; an auditor,
 * registered by the regulator, finds the break-glass entry on the regulator's gateway and exports it,
 * then finds it in the review queue and records an outcome (with the keyboard), which is then on the
 * ledger: the regulator's gateway and hospital2's show it in the AuditEvent. The staff view: a hospital2
 * practitioner refused a read checks why on hospital2's app (no consent permits it; nothing says whether a
 * record exists), asks the patient for access; the patient sees the request on hospital1's app, grants it
 * from there, and the read then succeeds. Screenshots of each page go to .hdx/screenshots/.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signDidToken } from '@hdx/gateway';
import { verifyReceipt } from '@hdx/gateway/dist/audit/receipt';
import * as os from 'node:os';
import { auditDelivered, call, type Gw, httpCall, registerDid, staffToken } from '../support/fhir-client';
import { canonicalJson, newNonce, nowSeconds, signCompact } from '../support/jose';
import { OrgClient } from '../support/ledger';
import { startTestGateway } from '../support/network';

const SCREENSHOTS = path.resolve(__dirname, '..', '..', '.hdx', 'screenshots');

/** The system Chromium (HDX_CHROMIUM overrides); scripts/test.sh installs Debian's when it is missing. */
function chromiumPath(): string {
  const candidates = [process.env.HDX_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  const found = candidates.find((p): p is string => p !== undefined && p !== '' && fs.existsSync(p));
  if (!found) throw new Error('No Chromium found: install it (Debian: apt-get install chromium; npm test does it when it runs as root) or set HDX_CHROMIUM');
  return found;
}

describe('patient web app in a real browser (real network)', function () {
  let h1: Gw;
  let h2: Gw;
  let reg: Gw;
  let browser: Browser;
  let page: Page;
  let origin: string;
  const problems: string[] = [];
  const drH2 = generateDidKey();
  const drH1 = generateDidKey();
  const auditor = generateDidKey();
  let patientDid: string;
  let observationId: string;

  const h2Read = (purpose = 'TREAT', breakGlassReason?: string) =>
    call(
      h1,
      'GET',
      `/Observation/${observationId}`,
      signDidToken({
        key: drH2.privateJwk,
        audience: h1.config.baseUrl,
        scope: 'user/*.read',
        purposeOfUse: purpose,
        ttlSec: 120,
        ...(breakGlassReason !== undefined ? { breakGlassReason } : {}),
      }),
    );

  /** The patient's access history as the regulator's auditor reads it on the ledger. */
  const historyAtRegulator = () =>
    call(
      reg,
      'GET',
      `/AuditEvent?patient=${patientDid}&_count=100`,
      signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 }),
    );

  async function shot(name: string): Promise<void> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  async function shot2(p: Page, name: string): Promise<void> {
    await p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  /** Activates a button with the keyboard (a click can miss while live notifications move the page). */
  async function press(selector: string): Promise<void> {
    await page.focus(selector);
    await page.keyboard.press('Enter');
  }

  async function textOf(selector: string): Promise<string> {
    return page.$eval(selector, (el) => el.textContent ?? '');
  }

  async function waitForText(selector: string, text: string): Promise<void> {
    await page.waitForFunction((s: string, t: string) => document.querySelector(s)?.textContent?.includes(t) === true, { timeout: 60_000 }, selector, text);
  }

  before(async () => {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    [h1, h2, reg] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2'), startTestGateway('regulator')]);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
    await registerDid(reg, 'regulator', 'auditor', auditor);
    origin = h1.config.baseUrl.replace(/\/fhir$/, '');
    browser = await puppeteer.launch({
      executablePath: chromiumPath(),
      headless: true,
      // As root (a CI container) Chromium runs only without its sandbox.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
    page = await browser.newPage();
    // A phone-sized screen.
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
    page.on('pageerror', (err) => problems.push(`page error: ${String(err)}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
    });
  });

  // A failed step leaves a picture of the page it failed on.
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && page) await shot(`failed-${(this.currentTest.title.slice(0, 40) || 'step').replace(/[^A-Za-z0-9]+/g, '-')}`).catch(() => undefined);
  });

  after(async () => {
    await browser?.close();
    await Promise.all([h1, h2, reg].filter(Boolean).map((g) => g.gateway.close()));
  });

  it('the patient creates a key in the page (keyboard only) and sees their DID and registration request', async () => {
    await page.goto(`${origin}/app/`, { waitUntil: 'networkidle0' });
    await page.waitForSelector('#create-key');
    await page.focus('#create-key');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#did');
    patientDid = (await textOf('#did')).trim();
    expect(patientDid).to.match(/^did:hdx:[A-Za-z0-9_-]{43}$/);
    await page.waitForFunction(() => (document.querySelector('#registration') as HTMLTextAreaElement | null)?.value.startsWith('{') === true);
    await page.waitForSelector('#download-backup');
    await shot('1-key');

    // The hospital registers the DID from the request the page made (its proof is verified on the ledger).
    const registration = JSON.parse(await page.$eval('#registration', (el) => (el as HTMLTextAreaElement).value)) as { did: string };
    expect(registration.did).to.equal(patientDid);
    const registered = await httpCall(`${origin}/did`, 'POST', staffToken(h1, 'hospital1', { role: 'admin' }), registration, 'application/json');
    expect(registered.status, registered.text).to.equal(201);

    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const p = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: patientDid }],
      name: [{ family: 'Adeyemi-Sørensen', given: ['Ilse'] }],
      birthDate: '1979-03-14',
    });
    expect(p.status, p.text).to.equal(201);
    const o = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
      subject: { reference: `Patient/${String(p.body.id)}` },
      effectiveDateTime: '2026-11-20T09:30:00Z',
      valueQuantity: { value: 71, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    });
    expect(o.status, o.text).to.equal(201);
    observationId = String(o.body.id);
    // Without a consent a hospital2 practitioner cannot read it (nor tell it exists).
    expect((await h2Read()).status).to.equal(404);
  });

  it('the patient grants Hospital2MSP a consent in the page, shown in plain words first; the hospital2 read then succeeds', async () => {
    // From now on the page holds its live stream open: it is never network-idle. Pages change by hash, as a click on the menu does.
    await page.evaluate(() => {
      location.hash = '#/consents';
    });
    await page.waitForSelector('#no-consents');
    await page.type('#who-0-value', 'Hospital2MSP');
    await page.click('#why-TREAT'); // unchecks the default …
    await page.click('#why-TREAT'); // … and checks it again: treatment only
    await page.click('#review-consent');
    await page.waitForSelector('#consent-words');
    const words = await textOf('#consent-words');
    expect(words).to.include('I allow the staff of Hospital2MSP to see all my health records, for treating me.');
    await shot('2-consent-review');
    await page.click('#sign-consent');
    await waitForText('#consent-status', 'Consent granted');
    await page.waitForSelector('#consent-list li');
    await shot('3-consents');

    const read = await h2Read();
    expect(read.status, read.text).to.equal(200);
    expect(read.body.valueQuantity.value).to.equal(71);
  });

  it('with the app open, a hospital2 practitioner’s read appears in the page without reloading, announced in an aria-live region', async () => {
    await page.evaluate(() => {
      location.hash = '#/history';
    });
    await waitForText('#live-state', 'Live:');
    // Async audit mode: the accesses so far reach the ledger within a flush; the page shows every one of
    // them (each has its own AuditEvent id, also when one ledger transaction holds several) before the new read.
    await auditDelivered(h1);
    const onLedger = await historyAtRegulator();
    expect(onLedger.status, onLedger.text).to.equal(200);
    const recorded = (onLedger.body.entry ?? []).length as number;
    expect(recorded).to.be.at.least(3);
    await page.waitForFunction((n: number) => document.querySelectorAll('#history-list li').length >= n, { timeout: 60_000 }, recorded);
    const before = await page.$$eval('#history-list li', (lis) => lis.map((li) => li.getAttribute('data-event')));
    expect(before).to.have.length(recorded);
    // Set in this document: still there afterwards only if the page was not reloaded.
    await page.evaluate(() => {
      (window as unknown as { hdxSameDocument: boolean }).hdxSameDocument = true;
    });
    const read = await h2Read();
    expect(read.status, read.text).to.equal(200);
    await page.waitForFunction((n: number) => document.querySelectorAll('#history-list li').length > n, { timeout: 60_000 }, before.length);
    const fresh = await page.$$eval(
      '#history-list li',
      (lis, old) => lis.filter((li) => !old.includes(li.getAttribute('data-event'))).map((li) => ({ text: li.textContent ?? '', outcome: li.getAttribute('data-outcome') })),
      before,
    );
    expect(fresh).to.have.length(1);
    expect(fresh[0]!.outcome).to.equal('permit');
    expect(fresh[0]!.text).to.include(drH2.did);
    // The notification: in a polite live region, naming who, from which organization, permitted.
    await page.waitForFunction((did: string) => document.querySelector('#live-notices')?.textContent?.includes(did) === true, { timeout: 10_000 }, drH2.did);
    expect(await page.$eval('#live-notices', (el) => el.getAttribute('aria-live'))).to.equal('polite');
    const notice = await textOf('#live-notices .live-notice');
    expect(notice).to.include('Permitted');
    expect(notice).to.include('of Hospital2MSP read your data');
    expect(await page.evaluate(() => (window as unknown as { hdxSameDocument?: boolean }).hdxSameDocument)).to.equal(true);
    // Long DIDs wrap: nothing is wider than the phone's screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot('4-live-notification');
  });

  it('the access history lists who read, from where, why, permit and deny; a break-glass read arrives live, highlighted', async () => {
    const glass = await h2Read('ETREAT', 'unconscious patient in the emergency room');
    expect(glass.status, glass.text).to.equal(200);
    await page.waitForSelector('#live-notices .live-notice.break-glass', { timeout: 60_000 });
    expect(await textOf('#live-notices .live-notice.break-glass')).to.include('Break-glass');
    await page.waitForSelector('#history-list li.break-glass');
    const entries = await page.$$eval('#history-list li', (lis) =>
      lis.map((li) => ({ text: li.textContent ?? '', outcome: li.getAttribute('data-outcome'), glass: li.classList.contains('break-glass') })),
    );
    // Every access, also those delivered in one ledger transaction with others (async audit mode): each has its own AuditEvent id.
    const byDrH2 = entries.filter((e) => e.text.includes(drH2.did));
    expect(byDrH2.map((e) => e.outcome)).to.include.members(['deny', 'permit']);
    expect(byDrH2.every((e) => e.text.includes('Hospital2MSP') && e.text.includes('Hospital1MSP'))).to.equal(true);
    const highlighted = byDrH2.filter((e) => e.glass);
    expect(highlighted).to.have.length(1);
    expect(highlighted[0]!.text).to.include('Break-glass');
    expect(highlighted[0]!.text).to.include('an emergency (break-glass)');
    // No PHI in the history: the patient's name and birth date are not on the ledger.
    expect(entries.map((e) => e.text).join(' ')).to.not.include('Adeyemi');
    await shot('5-history');
  });

  it('the records page lists what this member holds about the patient, from whom, each checked against its ledger anchor', async () => {
    await page.evaluate(() => {
      location.hash = '#/records';
    });
    await page.waitForSelector('#records-Observation li', { timeout: 60_000 });
    const observation = await textOf(`#records-Observation li[data-ref="Observation/${observationId}"]`);
    expect(observation).to.include('Heart rate');
    expect(observation).to.include('71 beats/minute');
    expect(observation).to.include('Not checked yet');
    await page.focus('#verify-all');
    await page.keyboard.press('Enter');
    await page.waitForSelector(`li[data-ref="Observation/${observationId}"][data-verified="true"]`, { timeout: 60_000 });
    expect(await textOf(`li[data-ref="Observation/${observationId}"]`)).to.include('matches its ledger anchor, written by Hospital1MSP');
    await waitForText('#records-status', 'verified against the ledger');
    await shot('6-records');
  });

  it('the patient revokes in the page; the next hospital2 read is denied', async () => {
    await page.evaluate(() => {
      location.hash = '#/consents';
    });
    await page.waitForSelector('#consent-list li button');
    await page.click('#consent-list li button');
    await waitForText('#consent-status', 'Consent revoked');
    await page.waitForSelector('#no-consents');
    await shot('7-revoked');
    const read = await h2Read();
    expect(read.status, read.text).to.equal(404);
    // The denied read arrives live too.
    await page.waitForSelector('#live-notices .live-notice.deny', { timeout: 60_000 });
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('a guardian chooses their ward in the page, grants and revokes for the ward (signed with their own key), and sees the ward’s records and history; someone who is not their ward is refused', async () => {
    // The ward: a second patient of hospital1, whose own signed word makes the page's patient their guardian on the ledger.
    const ward = generateDidKey();
    const stranger = generateDidKey();
    await registerDid(h1, 'hospital1', 'patient', ward);
    await registerDid(h1, 'hospital1', 'patient', stranger);
    const proof = signCompact(
      crypto.createPrivateKey({ key: { ...ward.privateJwk }, format: 'jwk' }),
      { alg: 'ES256', kid: ward.kid },
      canonicalJson({ action: 'add-guardian', patient: ward.did, guardian: patientDid, nonce: newNonce(), iat: nowSeconds() }),
    );
    const admin = OrgClient.admin('hospital1');
    try {
      const added = await admin.submit<{ hdx: { guardians: string[] } }>('hdx.identity', 'AddGuardian', JSON.stringify({ patient: ward.did, guardian: patientDid, proof }));
      expect(added.hdx.guardians).to.deep.equal([patientDid]);
    } finally {
      admin.close();
    }
    const staff = staffToken(h1, 'hospital1', { did: drH1.did });
    const wp = await call(h1, 'POST', '/Patient', staff, {
      resourceType: 'Patient',
      identifier: [{ system: DID_IDENTIFIER_SYSTEM, value: ward.did }],
      name: [{ family: 'Adeyemi-Sørensen', given: ['Mia'] }],
      birthDate: '2015-06-02',
    });
    expect(wp.status, wp.text).to.equal(201);
    const wo = await call(h1, 'POST', '/Observation', staff, {
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '8310-5', display: 'Body temperature' }] },
      subject: { reference: `Patient/${String(wp.body.id)}` },
      effectiveDateTime: '2026-11-21T08:00:00Z',
      valueQuantity: { value: 37.9, unit: 'Cel', system: 'http://unitsofmeasure.org', code: 'Cel' },
    });
    expect(wo.status, wo.text).to.equal(201);
    const wardObservation = String(wo.body.id);
    const h2ReadWard = () =>
      call(
        h1,
        'GET',
        `/Observation/${wardObservation}`,
        signDidToken({ key: drH2.privateJwk, audience: h1.config.baseUrl, scope: 'user/*.read', purposeOfUse: 'TREAT', ttlSec: 120 }),
      );
    expect((await h2ReadWard()).status).to.equal(404);

    await page.evaluate(() => {
      location.hash = '#/consents';
    });
    await page.waitForSelector('#subject-select');
    expect(await page.$eval('#subject-select', (el) => (el as HTMLSelectElement).labels?.[0]?.textContent ?? '')).to.include('Whose data');
    await page.click('.subject summary');
    // Someone who is not their ward: the gateway refuses, and the page says so; the choice stays "Me".
    const before = problems.length;
    await page.type('#ward-did', stranger.did);
    await press('#ward-add');
    await waitForText('#ward-error', 'not a guardian');
    expect(await textOf('#ward-error')).to.include('The gateway refused');
    expect(await page.$$eval('#subject-select option', (os) => os.map((o) => (o as HTMLOptionElement).value))).to.deep.equal([patientDid]);
    // Long DIDs in the refusal wrap: nothing is wider than the phone's screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot('7a-ward-refused');
    // The browser reports the refused request (403) on its console: that one is expected.
    problems.splice(before, problems.length - before, ...problems.slice(before).filter((p) => !p.includes('403')));

    // The ward: accepted, chosen, and the page says whose data it manages.
    // Cleared as a person does (select all, delete), so the page's state follows.
    await page.focus('#ward-did');
    await page.keyboard.down('Control');
    await page.keyboard.press('KeyA');
    await page.keyboard.up('Control');
    await page.keyboard.press('Backspace');
    expect(await page.$eval('#ward-did', (el) => (el as HTMLInputElement).value)).to.equal('');
    await page.type('#ward-did', ward.did);
    await press('#ward-add');
    await waitForText('#ward-status', 'You now act for your ward');
    expect(await page.$eval('#subject-select', (el) => (el as HTMLSelectElement).value)).to.equal(ward.did);
    expect(await textOf('#acting-for')).to.include(ward.did);
    await page.waitForSelector('#no-consents');

    // A consent for the ward, shown in plain words, signed with the guardian's own key.
    await page.type('#who-0-value', 'Hospital2MSP');
    await press('#review-consent');
    await page.waitForSelector('#consent-for-ward');
    expect(await textOf('#consent-for-ward')).to.include(ward.did);
    await press('#sign-consent');
    await waitForText('#consent-status', 'Consent granted');
    await page.waitForSelector('#consent-list li');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot('7b-ward-consent');
    const consentId = String(await page.$eval('#consent-list li', (li) => li.getAttribute('data-consent-id')));
    const onLedger = await call(h1, 'GET', `/Consent/${consentId}`, staff);
    expect(onLedger.status, onLedger.text).to.equal(200);
    expect(onLedger.body.patient).to.deep.equal({ reference: ward.did });
    const read = await h2ReadWard();
    expect(read.status, read.text).to.equal(200);
    expect(read.body.valueQuantity.value).to.equal(37.9);

    // The ward's records (their Patient here and the Observation) and their history (the hospital2 read), not the guardian's.
    await page.evaluate(() => {
      location.hash = '#/records';
    });
    await page.waitForSelector(`#records-Observation li[data-ref="Observation/${wardObservation}"]`, { timeout: 60_000 });
    expect(await page.$$eval('#records-Observation li', (lis) => lis.map((li) => li.getAttribute('data-ref')))).to.deep.equal([`Observation/${wardObservation}`]);
    await page.evaluate(() => {
      location.hash = '#/history';
    });
    await page.waitForFunction(
      (did: string) => Array.from(document.querySelectorAll('#history-list li')).some((li) => li.getAttribute('data-outcome') === 'permit' && (li.textContent ?? '').includes(did)),
      { timeout: 60_000 },
      drH2.did,
    );
    const wardHistory = await page.$$eval('#history-list li', (lis) => lis.map((li) => li.textContent ?? ''));
    // The ward's accesses, named as theirs; nothing of the guardian's own record.
    expect(wardHistory.some((t) => t.includes(ward.did))).to.equal(true);
    expect(wardHistory.some((t) => t.includes(observationId))).to.equal(false);
    await shot('7c-ward-history');

    // The guardian revokes the ward's consent; the next hospital2 read is denied.
    await page.evaluate(() => {
      location.hash = '#/consents';
    });
    await page.waitForSelector('#consent-list li button');
    await press('#consent-list li button');
    await waitForText('#consent-status', 'Consent revoked');
    expect((await h2ReadWard()).status).to.equal(404);

    // Back to their own data: their own (revoked) consent, none of the ward's.
    await page.select('#subject-select', patientDid);
    await page.waitForSelector('#no-consents');
    expect(await textOf('#consents-title')).to.equal('Consents');
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('an auditor registered by the regulator finds the break-glass access on the regulator’s gateway and exports it', async () => {
    const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-audit-downloads-'));
    const context = await browser.createBrowserContext({ downloadBehavior: { policy: 'allow', downloadPath: downloads } });
    const audit = await context.newPage();
    await audit.setViewport({ width: 1280, height: 900 });
    audit.on('pageerror', (err) => problems.push(`auditor page error: ${String(err)}`));
    const regOrigin = reg.config.baseUrl.replace(/\/fhir$/, '');
    await audit.goto(`${regOrigin}/app/`, { waitUntil: 'networkidle0' });
    // The auditor's key comes from `hdx keygen` (here the same JSON): imported into the page.
    const keyFile = path.join(downloads, 'auditor-key.json');
    fs.writeFileSync(keyFile, JSON.stringify(auditor.privateJwk));
    const input = await audit.waitForSelector('#import-key');
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(keyFile);
    await audit.waitForFunction((did: string) => document.querySelector('#did')?.textContent?.includes(did) === true, { timeout: 30_000 }, auditor.did);
    fs.rmSync(keyFile);
    await audit.evaluate(() => {
      location.hash = '#/audit';
    });
    await audit.waitForSelector('#f-patient');
    await audit.type('#f-patient', patientDid);
    await audit.click('#f-glass');
    await audit.click('#audit-search-button');
    await audit.waitForFunction(() => document.querySelector('#audit-status')?.textContent?.includes('match') === true, { timeout: 60_000 });
    const rows = await audit.$$eval('#audit-results tbody tr', (trs) => trs.map((tr) => ({ text: tr.textContent ?? '', glass: tr.classList.contains('break-glass') })));
    expect(rows).to.have.length(1);
    expect(rows[0]!.glass).to.equal(true);
    expect(rows[0]!.text).to.include(drH2.did);
    expect(rows[0]!.text).to.include('ETREAT');
    // Accesses per day: one day, one access, no denial, one break-glass.
    const days = await audit.$$eval('#audit-per-day tbody tr', (trs) =>
      trs.map((tr) =>
        Array.from(tr.querySelectorAll('th, td'))
          .slice(0, 4)
          .map((c) => c.textContent ?? ''),
      ),
    );
    expect(days).to.have.length(1);
    expect(days[0]!.slice(1)).to.deep.equal(['1', '0', '1']);
    const bars = await audit.$$eval('#audit-per-day .day-bar', (spans) => spans.map((s) => Math.round(s.getBoundingClientRect().width)));
    expect(bars[0]).to.be.greaterThan(0);
    expect(bars[1]).to.equal(0);
    expect(bars[2]).to.equal(bars[0]);
    await shot2(audit, '8-auditor');

    // Without the filter the patient's other accesses are there too (denials among them).
    await audit.click('#f-glass');
    await audit.select('#f-decision', 'deny');
    await audit.click('#audit-search-button');
    // The table is filtered in the page at once; the search on the ledger (outcome=4) then replaces what was fetched.
    await audit.waitForFunction(
      () => {
        const rows = Array.from(document.querySelectorAll('#audit-results tbody tr'));
        return document.querySelector('#audit-status')?.textContent?.includes('match') === true && rows.length >= 1 && rows.every((tr) => tr.classList.contains('deny'));
      },
      { timeout: 60_000 },
    );

    // Exports, made in the browser.
    await audit.click('#f-glass');
    await audit.select('#f-decision', '');
    await audit.click('#audit-search-button');
    await audit.waitForFunction(
      () => document.querySelector('#audit-status')?.textContent?.includes('match') === true && document.querySelectorAll('#audit-results tbody tr').length === 1,
      { timeout: 60_000 },
    );
    await audit.click('#export-csv');
    await audit.click('#export-bundle');
    const saved = async (ext: string): Promise<string> => {
      for (let i = 0; i < 100; i += 1) {
        const f = fs.readdirSync(downloads).find((n) => n.endsWith(ext));
        if (f) return fs.readFileSync(path.join(downloads, f), 'utf8');
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no ${ext} download`);
    };
    const csv = await saved('.csv');
    const lines = csv.trim().split('\r\n');
    expect(lines[0]).to.match(/^when,decision,breakGlass,actor,organization/);
    // The review state of the break-glass access: open (not reviewed yet), no outcome.
    expect(lines[0]).to.match(/,reviewState,reviewOutcome$/);
    expect(lines).to.have.length(2);
    expect(lines[1]).to.include(',yes,');
    expect(lines[1]).to.match(/,open,$/);
    expect(lines[1]).to.include(drH2.did);
    const bundle = JSON.parse(await saved('.json')) as { resourceType: string; type: string; entry: Array<{ resource: { resourceType: string } }> };
    expect(bundle).to.include({ resourceType: 'Bundle', type: 'collection' });
    expect(bundle.entry.map((e) => e.resource.resourceType)).to.deep.equal(['AuditEvent']);

    // The row's ledger receipt, checked in the page (WebCrypto, no trust in the gateway): verified, and the
    // page says what the CLI's verifier (the gateway's verifyReceipt, run here on the same receipt) says.
    await audit.click('#audit-results tbody tr .receipt-check');
    await audit.waitForSelector('#audit-results tbody tr [data-receipt="verified"]', { timeout: 60_000 });
    const receiptText = await audit.$eval('#audit-results tbody tr .receipt', (el) => el.textContent ?? '');
    const glassEventId = await audit.$eval('#audit-results tbody tr', (tr) => tr.getAttribute('data-event-id') ?? '');
    expect(glassEventId).to.match(/^[A-Za-z0-9]+\.[0-9]+$/);
    const fetched = await httpCall(
      `${reg.config.baseUrl}/AuditEvent/${glassEventId}/$receipt`,
      'GET',
      signDidToken({ key: auditor.privateJwk, audience: reg.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 }),
    );
    expect(fetched.status, fetched.text).to.equal(200);
    const cli = verifyReceipt(JSON.parse(fetched.text));
    expect(receiptText).to.include('Receipt verified');
    expect(receiptText).to.include(`endorsed by ${cli.endorsedBy.join(', ')}, block ${cli.blockNumber}`);
    expect(receiptText).to.include(`submitted by ${cli.submittedBy}`);
    // A receipt kept for the webapp's unit tests (the same checks on a real block, and tampered copies).
    fs.writeFileSync(path.join(SCREENSHOTS, '..', 'webapp-receipt.json'), fetched.text);
    await shot2(audit, '8b-auditor-receipt');

    // The review queue: the break-glass access is open; the auditor records an outcome with the keyboard.
    await audit.focus('#review-load');
    await audit.keyboard.press('Enter');
    const openItem = (p: string, d: string): string | undefined =>
      Array.from(document.querySelectorAll('#review-open li'))
        .find((li) => (li.textContent ?? '').includes(p) && (li.textContent ?? '').includes(d))
        ?.getAttribute('data-event-id') ?? undefined;
    await audit.waitForFunction(openItem, { timeout: 60_000 }, patientDid, drH2.did);
    const eventId = String(await audit.evaluate(openItem, patientDid, drH2.did));
    expect(eventId).to.match(/^[A-Za-z0-9]+\.[0-9]+$/);
    const select = `#review-outcome-${eventId.replace(/[^A-Za-z0-9]/g, '-')}`;
    await shot2(audit, '9-auditor-queue');
    // Labelled: the select's label says what it is.
    expect(await audit.$eval(select, (el) => (el as HTMLSelectElement).labels?.[0]?.textContent ?? '')).to.include('Outcome');
    await audit.focus(select);
    await audit.keyboard.press('ArrowDown');
    await audit.keyboard.press('ArrowDown');
    expect(await audit.$eval(select, (el) => (el as HTMLSelectElement).value)).to.equal('not-justified');
    await audit.keyboard.press('Tab');
    expect(await audit.evaluate(() => document.activeElement?.textContent ?? '')).to.equal('Record outcome');
    await audit.keyboard.press('Enter');
    await audit.waitForFunction(
      (id: string) => document.querySelector(`#review-done li[data-event-id="${id}"] [data-outcome="not-justified"]`) !== null,
      { timeout: 60_000 },
      eventId,
    );
    expect(await audit.$eval('#review-status', (el) => el.textContent ?? '')).to.include('Not justified');
    // It left the queue.
    expect(await audit.evaluate(openItem, patientDid, drH2.did)).to.equal(undefined);
    await shot2(audit, '9-auditor-review');

    // The queue is live: a new break-glass access joins it as its block commits, without a reload.
    await audit.waitForFunction(() => document.querySelector('#review-live')?.textContent?.includes('Live:') === true, { timeout: 60_000 });
    const again = await h2Read('ETREAT', 'patient unresponsive again');
    expect(again.status, again.text).to.equal(200);
    await audit.waitForFunction(
      (p: string, d: string, old: string) =>
        Array.from(document.querySelectorAll('#review-open li[data-live="new"]')).some(
          (li) => li.getAttribute('data-event-id') !== old && (li.textContent ?? '').includes(p) && (li.textContent ?? '').includes(d),
        ),
      { timeout: 60_000 },
      patientDid,
      drH2.did,
      eventId,
    );
    expect(await audit.$eval('#review-status', (el) => el.textContent ?? '')).to.include('A new break-glass access joined the queue');
    await shot2(audit, '9b-auditor-queue-live');

    // On the ledger: the regulator's gateway shows the outcome in the AuditEvent …
    const reviewState = (body: { entry?: Array<{ resource: { extension?: Array<{ url: string; valueString?: string; extension?: Array<Record<string, unknown>> }> } }> }) => {
      const event = (body.entry ?? []).map((e) => e.resource).find((r) => r.extension?.some((x) => x.url.endsWith('/ledger-event-id') && x.valueString === eventId));
      const parts = event?.extension?.find((x) => x.url.endsWith('/break-glass-review'))?.extension ?? [];
      return {
        state: parts.find((x) => x.url === 'state')?.valueCode,
        outcome: (parts.find((x) => x.url === 'outcome')?.valueCoding as { code?: string } | undefined)?.code,
        reviewer: (parts.find((x) => x.url === 'reviewer')?.valueIdentifier as { value?: string } | undefined)?.value,
      };
    };
    const atRegulator = await historyAtRegulator();
    expect(atRegulator.status, atRegulator.text).to.equal(200);
    expect(reviewState(atRegulator.body)).to.deep.equal({ state: 'reviewed', outcome: 'not-justified', reviewer: auditor.did });
    // … and so does a second gateway: hospital2 shows its practitioner the review of their own break-glass.
    const atHospital2 = await call(
      h2,
      'GET',
      `/AuditEvent?agent=${drH2.did}&_count=100`,
      signDidToken({ key: drH2.privateJwk, audience: h2.config.baseUrl, scope: 'user/AuditEvent.read', ttlSec: 120 }),
    );
    expect(atHospital2.status, atHospital2.text).to.equal(200);
    expect(reviewState(atHospital2.body)).to.deep.equal({ state: 'reviewed', outcome: 'not-justified', reviewer: auditor.did });
    // … and the patient's own history page (hospital1's gateway) shows the auditor's outcome.
    await page.evaluate(() => {
      location.hash = '#/records';
    });
    await page.evaluate(() => {
      location.hash = '#/history';
    });
    await page.waitForFunction(() => document.querySelector('#history-list li.break-glass [data-review="not-justified"]') !== null, { timeout: 60_000 });
    await shot('10-history-reviewed');
    await context.close();
    fs.rmSync(downloads, { recursive: true, force: true });
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });

  it('the staff view: a hospital2 practitioner refused a read sees why (no consent; nothing says whether a record exists), asks the patient, who grants from the request; the read then succeeds', async () => {
    // Refused, exactly as a missing record.
    expect((await h2Read()).status).to.equal(404);

    // The practitioner signs in at their own organization's gateway with their DID key (imported, as an auditor's is).
    const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'hdx-staff-'));
    const context = await browser.createBrowserContext();
    const staff = await context.newPage();
    await staff.setViewport({ width: 390, height: 844, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
    staff.on('pageerror', (err) => problems.push(`staff page error: ${String(err)}`));
    const h2Origin = h2.config.baseUrl.replace(/\/fhir$/, '');
    await staff.goto(`${h2Origin}/app/`, { waitUntil: 'networkidle0' });
    const keyFile = path.join(downloads, 'practitioner-key.json');
    fs.writeFileSync(keyFile, JSON.stringify(drH2.privateJwk));
    const input = await staff.waitForSelector('#import-key');
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(keyFile);
    await staff.waitForFunction((did: string) => document.querySelector('#did')?.textContent?.includes(did) === true, { timeout: 30_000 }, drH2.did);
    fs.rmSync(downloads, { recursive: true, force: true });
    await staff.evaluate(() => {
      location.hash = '#/staff';
    });
    await staff.waitForSelector('#staff-patient');
    // Labelled fields.
    expect(await staff.$eval('#staff-patient', (el) => (el as HTMLInputElement).labels?.[0]?.textContent ?? '')).to.include('Patient DID');
    await staff.type('#staff-patient', patientDid);
    await staff.select('#staff-purpose', 'TREAT');
    await staff.$eval('#staff-type', (el) => {
      (el as HTMLInputElement).value = '';
    });
    await staff.type('#staff-type', 'Observation');
    await staff.type('#staff-custodian', 'Hospital1MSP');
    await staff.focus('#staff-check');
    await staff.keyboard.press('Enter');
    await staff.waitForSelector('#staff-answer', { timeout: 60_000 });
    expect(await staff.$eval('#staff-answer', (el) => el.getAttribute('data-permitted'))).to.equal('false');
    const answer = await staff.$eval('#staff-answer', (el) => el.textContent ?? '');
    expect(answer).to.include('Not permitted');
    expect(await staff.$eval('#staff-explanation', (el) => el.textContent ?? '')).to.equal(
      'No consent of this patient permits you or Hospital2MSP to read Observation records held by Hospital1MSP for treatment (TREAT). You can ask the patient for access.',
    );
    // Nothing on the page says whether the patient has a record, or how many, nor which consent (the revoked one) decided.
    const pageText = await staff.$eval('main', (el) => el.textContent ?? '');
    expect(pageText).to.not.match(/\b\d+\s+(record|result|resource|match)/i);
    expect(pageText).to.not.match(/exists?\b|found|no records|revoked|denied by|Consent\//i);
    expect(pageText).to.not.include(observationId);
    expect(await staff.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot2(staff, '11-staff-denied');

    // The request, on the ledger for the patient.
    await staff.focus('#staff-request');
    await staff.keyboard.press('Enter');
    await staff.waitForFunction(() => document.querySelector('#staff-status')?.textContent?.includes('Request sent') === true, { timeout: 60_000 });
    await shot2(staff, '12-staff-request-sent');

    // The patient sees it in their app, at hospital1's gateway (another member's).
    await page.evaluate(() => {
      location.hash = '#/requests';
    });
    const item = `#request-list li[data-requester="${drH2.did}"]`;
    for (let i = 0; i < 30 && (await page.$(item)) === null; i += 1) {
      await new Promise((r) => setTimeout(r, 1000));
      if ((await page.$(item)) === null) await press('#requests-refresh');
    }
    await page.waitForSelector(item, { timeout: 30_000 });
    const requestText = await textOf(item);
    expect(requestText).to.include('Hospital2MSP');
    expect(requestText).to.include('treatment (TREAT)');
    expect(requestText).to.include('Observation records');
    expect(requestText).to.include('No consent permits this yet');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot('13-requests');

    // Grant: the consent form, prefilled with that practitioner, purpose and type; read in plain words, then signed.
    await press(`${item} .grant-request`);
    await page.waitForFunction((did: string) => (document.querySelector('#who-0-value') as HTMLInputElement | null)?.value === did, { timeout: 30_000 }, drH2.did);
    expect(await page.$eval('#who-0-person', (el) => (el as HTMLInputElement).checked)).to.equal(true);
    expect(await page.$eval('#what-types', (el) => (el as HTMLInputElement).value)).to.equal('Observation');
    await press('#review-consent');
    await page.waitForSelector('#consent-words');
    expect(await textOf('#consent-words')).to.include(`I allow the person with DID ${drH2.did} to see Observation records, for treating me.`);
    // The practitioner's DID in the words wraps: nothing is wider than the phone's screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).to.be.at.most(390);
    await shot('14-grant-from-request');
    await press('#sign-consent');
    await waitForText('#consent-status', 'Consent granted');

    // The practitioner's read now succeeds, and the check says so; the patient's list says a consent permits it.
    const read = await h2Read();
    expect(read.status, read.text).to.equal(200);
    // Asked of hospital2's peer, which receives the consent's block a moment after hospital1's: asked again until it has.
    for (let i = 0; i < 30; i += 1) {
      await staff.focus('#staff-check');
      await staff.keyboard.press('Enter');
      await staff.waitForFunction(() => document.querySelector('#staff-answer') !== null, { timeout: 60_000 });
      if ((await staff.$eval('#staff-answer', (el) => el.getAttribute('data-permitted'))) === 'true') break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(await staff.$eval('#staff-answer', (el) => el.getAttribute('data-permitted'))).to.equal('true');
    expect(await staff.$eval('#staff-explanation', (el) => el.textContent ?? '')).to.include('A consent of this patient permits you or Hospital2MSP');
    await shot2(staff, '15-staff-permitted');
    await page.evaluate(() => {
      location.hash = '#/requests';
    });
    await page.waitForSelector(`${item}[data-permitted="true"]`, { timeout: 60_000 });
    await context.close();
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });
});
