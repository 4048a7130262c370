/// <reference lib="dom" />
/**
 * The patient's web app (issue 12) in a real Chromium (Debian's `chromium`, driven by puppeteer-core) on
 * the real network, on a phone-sized screen: the patient creates a key in the page, the hospital
 * registers the DID, the patient grants a consent to Hospital2MSP in the page and a hospital2
 * practitioner's read then succeeds; the access history shows it (and a break-glass read, highlighted);
 * the patient revokes in the page and the next read is denied. Screenshots of each page go to
 * .hdx/screenshots/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { DID_IDENTIFIER_SYSTEM, generateDidKey, signDidToken } from '@hdx/gateway';
import { auditDelivered, call, type Gw, httpCall, registerDid, staffToken } from '../support/fhir-client';
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
  let browser: Browser;
  let page: Page;
  let origin: string;
  const problems: string[] = [];
  const drH2 = generateDidKey();
  const drH1 = generateDidKey();
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

  async function shot(name: string): Promise<void> {
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  async function textOf(selector: string): Promise<string> {
    return page.$eval(selector, (el) => el.textContent ?? '');
  }

  async function waitForText(selector: string, text: string): Promise<void> {
    await page.waitForFunction((s: string, t: string) => document.querySelector(s)?.textContent?.includes(t) === true, { timeout: 60_000 }, selector, text);
  }

  before(async () => {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    [h1, h2] = await Promise.all([startTestGateway('hospital1'), startTestGateway('hospital2')]);
    await registerDid(h1, 'hospital1', 'practitioner', drH1);
    await registerDid(h2, 'hospital2', 'practitioner', drH2);
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

  after(async () => {
    await browser?.close();
    await Promise.all([h1, h2].filter(Boolean).map((g) => g.gateway.close()));
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
    await page.goto(`${origin}/app/#/consents`, { waitUntil: 'networkidle0' });
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

  it('the access history page lists who read, from where, why, permit and deny, with break-glass highlighted', async () => {
    const glass = await h2Read('ETREAT', 'unconscious patient in the emergency room');
    expect(glass.status, glass.text).to.equal(200);
    // Async audit mode (the default): the entries reach the ledger within a flush interval.
    await auditDelivered(h1);
    await page.goto(`${origin}/app/#/history`, { waitUntil: 'networkidle0' });
    await page.waitForFunction(() => document.querySelectorAll('#history-list li').length >= 3, { timeout: 60_000 });
    const entries = await page.$$eval('#history-list li', (lis) =>
      lis.map((li) => ({ text: li.textContent ?? '', outcome: li.getAttribute('data-outcome'), glass: li.classList.contains('break-glass') })),
    );
    const byDrH2 = entries.filter((e) => e.text.includes(drH2.did));
    expect(byDrH2.map((e) => e.outcome)).to.include.members(['deny', 'permit']);
    expect(byDrH2.every((e) => e.text.includes('Hospital2MSP') && e.text.includes('Hospital1MSP'))).to.equal(true);
    const highlighted = byDrH2.filter((e) => e.glass);
    expect(highlighted).to.have.length(1);
    expect(highlighted[0]!.text).to.include('Break-glass');
    expect(highlighted[0]!.text).to.include('an emergency (break-glass)');
    // No PHI in the history: the patient's name and birth date are not on the ledger.
    expect(entries.map((e) => e.text).join(' ')).to.not.include('Adeyemi');
    await shot('4-history');
  });

  it('the patient revokes in the page; the next hospital2 read is denied', async () => {
    await page.goto(`${origin}/app/#/consents`, { waitUntil: 'networkidle0' });
    await page.waitForSelector('#consent-list li button');
    await page.click('#consent-list li button');
    await waitForText('#consent-status', 'Consent revoked');
    await page.waitForSelector('#no-consents');
    await shot('5-revoked');
    const read = await h2Read();
    expect(read.status, read.text).to.equal(404);
    expect(problems, problems.join('\n')).to.deep.equal([]);
  });
});
