import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { evaluate, evaluateWithEngine, searchParamsOf, SUPPORTED_TYPES, unionTerms } from './definitions';
import { compileNavigation } from './navigation';

describe('search expressions read without the FHIRPath engine (navigation)', () => {
  it('reads element paths, choice elements with a type filter, and reference-target filters; leaves the rest to the engine', () => {
    expect(compileNavigation(['Observation.code'])).to.deep.equal([{ root: 'Observation', steps: [{ keys: ['code'] }] }]);
    expect(compileNavigation(['Observation.value.ofType(Quantity)'])?.[0]?.steps).to.deep.equal([{ keys: ['valueQuantity'] }]);
    expect(compileNavigation(['Observation.effective'])?.[0]?.steps).to.deep.equal([{ keys: ['effectiveDateTime', 'effectivePeriod', 'effectiveTiming', 'effectiveInstant'] }]);
    expect(compileNavigation(["Observation.subject.where((reference.startsWith('Patient/') or type = 'Patient'))"])?.[0]?.steps).to.deep.equal([
      { keys: ['subject'] },
      { refTo: 'Patient' },
    ]);
    expect(compileNavigation(['code', 'value.ofType(Quantity)'], 'Observation.component')?.map((n) => n.steps)).to.deep.equal([
      [{ keys: ['code'] }],
      [{ keys: ['valueQuantity'] }],
    ]);
    // A datatype's elements by the type's own paths; an element defined elsewhere by its definition.
    expect(compileNavigation(['Observation.code.coding.system'])?.[0]?.steps).to.have.length(3);
    expect(compileNavigation(['Questionnaire.item.item.code'])?.[0]?.steps).to.have.length(3);
    // Left to the engine: functions, comparisons, %resource, an unknown element, a type filter not on a choice element,
    // a filter another choice type derives from (Condition.onset: Age is a Quantity), a System type of an ambiguous family.
    for (const e of [
      'Patient.deceased.exists() and Patient.deceased != false',
      "Patient.extension.where(url = 'http://x')",
      '%resource.code',
      'Observation.nothing',
      'Observation.subject.ofType(Reference)',
      'Condition.onset.ofType(Quantity)',
      'Observation.effective.ofType(DateTime)',
      'Observation.effective.start',
      'Bundle.entry[0].resource',
    ]) {
      expect(compileNavigation(unionTerms(e)), e).to.equal(undefined);
    }
  });

  it('selects what the engine selects, in its order, for every search parameter (and composite component) of every official R4 example', function () {
    this.timeout(300_000);
    const dir = path.dirname(require.resolve('hl7.fhir.r4.examples/package.json'));
    let compared = 0;
    let direct = 0;
    let nonEmpty = 0;
    const check = (resource: Record<string, unknown>, expression: string, what: string, base?: string): unknown[] => {
      let engine: unknown[];
      try {
        engine = evaluateWithEngine(resource, expression, base);
      } catch {
        return []; // an example the engine cannot evaluate (refused at write, see http/r4-examples.test.ts)
      }
      expect(evaluate(resource, expression, base), what).to.deep.equal(engine);
      compared++;
      if (engine.length > 0) nonEmpty++;
      if (compileNavigation(unionTerms(expression), base)) direct++;
      return engine;
    };
    for (const f of fs.readdirSync(dir).filter((x) => /^[A-Z][A-Za-z]+-.+\.json$/.test(x))) {
      const resource = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Record<string, unknown>;
      if (!SUPPORTED_TYPES.has(String(resource.resourceType))) continue;
      for (const [code, p] of searchParamsOf(String(resource.resourceType))) {
        check(resource, p.expression, `${f} ${code}`);
        if (p.type !== 'composite') continue;
        for (const term of unionTerms(p.expression)) {
          for (const element of check(resource, term, `${f} ${code} ${term}`)) {
            if (!element || typeof element !== 'object') continue;
            for (const c of p.components ?? []) check(element as Record<string, unknown>, c.expression, `${f} ${code} ${term} ${c.expression}`, term);
          }
        }
      }
    }
    expect(compared).to.be.greaterThan(100_000);
    expect(nonEmpty).to.be.greaterThan(10_000);
    // Most expressions are read directly (the point of it).
    expect(direct / compared).to.be.greaterThan(0.8);
  });
});
