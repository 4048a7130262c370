import { expect } from 'chai';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TEST_DATA = join(__dirname, '..', '..', 'test-data');

export function readTestData(...parts: string[]): string {
  return readFileSync(join(TEST_DATA, ...parts), 'utf8');
}

/**
 * Compares `actual` with test-data/golden/<name>.json. With UPDATE_GOLDEN=1 the file is (re)written
 * instead; review the diff before committing it. A missing golden file is a failure, not a silent write.
 */
export function expectGolden(name: string, actual: unknown): void {
  const file = join(TEST_DATA, 'golden', `${name}.json`);
  const text = `${JSON.stringify(actual, null, 2)}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1') {
    writeFileSync(file, text);
    return;
  }
  expect(existsSync(file), `golden file ${file} is missing (run with UPDATE_GOLDEN=1)`).to.equal(true);
  expect(JSON.parse(text)).to.deep.equal(JSON.parse(readFileSync(file, 'utf8')));
}
