import { expect } from 'chai';
import { MappingError } from '../errors';
import { HL7_LIMITS, comp, location, parseHl7v2, repetitions, unescapeValue, value } from './parse';

const MSH = 'MSH|^~\\&|APP|FAC|HDX|HDX|20240101||ADT^A01|1|P|2.5';

function expectError(fn: () => unknown, code: MappingError['code'], loc: string, message?: RegExp): MappingError {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(MappingError);
    const err = e as MappingError;
    expect(err.code, err.message).to.equal(code);
    expect(err.location, err.message).to.equal(loc);
    if (message) expect(err.message).to.match(message);
    return err;
  }
  expect.fail('expected a MappingError');
}

describe('hl7v2 parse', () => {
  it('splits fields, repetitions, components and subcomponents with MSH numbering', () => {
    const msg = parseHl7v2(`${MSH}\rPID|1||A1^^^H&1.2.3&ISO^MR~B2||Doe^Jane`);
    const [msh, pid] = msg.segments;
    expect(msh?.name).to.equal('MSH');
    expect(value(msh, 1)).to.equal('|');
    expect(value(msh, 2)).to.equal('^~\\&');
    expect(value(msh, 9, 1)).to.equal('ADT');
    expect(value(msh, 9, 2)).to.equal('A01');
    expect(value(msh, 12)).to.equal('2.5');
    expect(pid && repetitions(pid, 3)).to.have.length(2);
    expect(pid && comp(repetitions(pid, 3)[0], 4, 2)).to.equal('1.2.3');
    expect(value(pid, 5, 2)).to.equal('Jane');
  });

  it('accepts CR, LF and CRLF segment endings, MLLP framing and a BOM', () => {
    for (const text of [`${MSH}\rPID|1`, `${MSH}\nPID|1\n`, `${MSH}\r\nPID|1\r\n`, `\x0b${MSH}\rPID|1\r\x1c\r`, `\uFEFF${MSH}\rPID|1`]) {
      const msg = parseHl7v2(text);
      expect(msg.segments.map((s) => s.name)).to.deep.equal(['MSH', 'PID']);
    }
  });

  it('uses the encoding characters declared in MSH-1/MSH-2', () => {
    const msg = parseHl7v2('MSH#$%!*#APP#FAC\rPID#1##X$$$A*B$MR%Y##Doe$Jo!F!e');
    const pid = msg.segments[1];
    expect(msg.encoding).to.deep.equal({ field: '#', component: '$', repetition: '%', escape: '!', subcomponent: '*' });
    expect(pid && repetitions(pid, 3)).to.have.length(2);
    expect(pid && comp(repetitions(pid, 3)[0], 4, 2)).to.equal('B');
    expect(value(pid, 5, 2)).to.equal('Jo#e');
  });

  it('decodes escape sequences after splitting, so escaped delimiters stay data', () => {
    const msg = parseHl7v2(`${MSH}\rNTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41C3A9\\\\.br\\g\\H\\bold\\N\\`);
    const nte = msg.segments[1];
    expect(nte && repetitions(nte, 3)).to.have.length(1);
    expect(value(nte, 3)).to.equal('a|b^c&d~e\\fAé\ngbold');
  });

  it('reads "" as an explicit empty value', () => {
    expect(value(parseHl7v2(`${MSH}\rPID|1||""`).segments[1], 3)).to.equal(undefined);
  });

  it('decodes bytes as UTF-8 by default and as ISO-8859-1 when MSH-18 says so', () => {
    const utf8 = Buffer.from(`${MSH}\rPID|1||||Müller`, 'utf8');
    expect(value(parseHl7v2(utf8).segments[1], 5)).to.equal('Müller');
    const latin1 = Buffer.from(`${MSH}||||||8859/1\rPID|1||||Müller`, 'latin1');
    expect(value(parseHl7v2(latin1).segments[1], 5)).to.equal('Müller');
    const badUtf8 = Buffer.concat([Buffer.from(`${MSH}\rPID|1||||M`), Buffer.from([0xfc]), Buffer.from('ller')]);
    expectError(() => parseHl7v2(badUtf8), 'INVALID', 'MSH-18', /not valid UTF-8/);
    expectError(() => parseHl7v2(Buffer.from(`${MSH}||||||ISO IR87\rPID|1`)), 'UNMAPPABLE', 'MSH-18');
  });

  it('rejects malformed structure with the segment or field named', () => {
    expectError(() => parseHl7v2(''), 'INVALID', 'segment 1', /start with an MSH/);
    expectError(() => parseHl7v2('PID|1'), 'INVALID', 'segment 1');
    expectError(() => parseHl7v2('MSH|^~'), 'INVALID', 'MSH-2', /truncated/);
    expectError(() => parseHl7v2('MSH|^~\\|APP'), 'INVALID', 'MSH-2', /4 \(or 5/);
    expectError(() => parseHl7v2('MSH|^^\\&|APP'), 'INVALID', 'MSH-2', /distinct/);
    expectError(() => parseHl7v2('MSH|^|\\&|APP'), 'INVALID', 'MSH-2');
    expectError(() => parseHl7v2('MSHA^~\\&|APP'), 'INVALID', 'MSH-1');
    expectError(() => parseHl7v2(`${MSH}\rpid|1`), 'INVALID', 'segment 2', /segment name/);
    expectError(() => parseHl7v2(`${MSH}\rPIDX|1`), 'INVALID', 'segment 2');
    expectError(() => parseHl7v2(`${MSH}\r\rPID|1`), 'INVALID', 'segment 2', /empty segment/);
    expectError(() => parseHl7v2(`FHS|^~\\&\r${MSH}`), 'UNMAPPABLE', 'segment 1', /batches/);
  });

  it('rejects bad escapes at the exact component', () => {
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||Doe^Ja\\Fne`), 'INVALID', 'PID-5.2', /unterminated/);
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||Doe^Ja\\Q\\ne`), 'INVALID', 'PID-5.2', /unknown escape/);
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||Doe\\X4\\`), 'INVALID', 'PID-5', /hexadecimal/);
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||Doe\\C2842\\`), 'UNMAPPABLE', 'PID-5');
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||Doe\\Zabc\\`), 'UNMAPPABLE', 'PID-5');
    expectError(() => parseHl7v2(`${MSH}\rOBX|1\rOBX|2||||a~b\\`), 'INVALID', 'OBX[2]-5(2)');
  });

  it('enforces size limits with precise locations', () => {
    const huge = 'x'.repeat(HL7_LIMITS.maxFieldLength + 1);
    expectError(() => parseHl7v2(`${MSH}\rPID|1||||${huge}`), 'INVALID', 'PID-5', /longer than/);
    // text fields (OBX-5) may be larger
    expect(value(parseHl7v2(`${MSH}\rOBX|1|TX|||${huge}`).segments[1], 5)).to.have.length(huge.length);
    expectError(() => parseHl7v2(`${MSH}\r${'x'.repeat(HL7_LIMITS.maxMessageLength)}`), 'INVALID', 'message');
    expectError(() => parseHl7v2(`${MSH}${'\rNTE|1'.repeat(HL7_LIMITS.maxSegments)}`), 'INVALID', 'message', /segments/);
  });

  it('formats locations with occurrence, repetition, component and subcomponent', () => {
    expect(location({ name: 'PID', occurrence: 1 }, 5)).to.equal('PID-5');
    expect(location({ name: 'OBX', occurrence: 3 }, 5, 2, 1)).to.equal('OBX[3]-5(2).1');
    expect(location({ name: 'PID', occurrence: 1 }, 3, 1, 4, 2)).to.equal('PID-3.4.2');
  });

  it('unescapeValue leaves text without escapes untouched', () => {
    const enc = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };
    expect(unescapeValue('plain text', enc, 'X-1')).to.equal('plain text');
    expect(unescapeValue('\\.sp 2\\a\\.in +4\\b', enc, 'X-1')).to.equal('\nab');
  });
});
